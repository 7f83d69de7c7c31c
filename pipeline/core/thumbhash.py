"""ThumbHash (https://evanw.github.io/thumbhash/): a picture of at most 100x100 pixels as about
25 bytes, from which a client draws a blurred placeholder with the right colours, aspect and
alpha.

A port of the reference encoder (``rgbaToThumbHash`` of the JavaScript ``thumbhash`` package),
made to give the very same bytes: the same float64 operations in the same order (sums are
sequential, as the reference's loops are), the reference's rounding (half up, as
``Math.round``), and JavaScript's own cosine: V8's ``Math.cos`` is fdlibm's, which differs
from glibc's in the last bit for 1,238 of the 40,400 arguments a ThumbHash can take, and a last
bit is enough to flip a rounding (seen: one hash in 210). The fdlibm cosine below gives V8's
value for every one of them. The Python packages on PyPI differ from the reference on some
pictures (alpha, a single pixel); tests/core/test_thumbhash.py holds hashes the reference
made (tests/fixtures/thumbhash, with the script that made them).
"""

from __future__ import annotations

import math
import struct
from functools import cache

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def rgba_to_thumbhash(width: int, height: int, rgba: bytes) -> bytes:
    """The ThumbHash of ``width`` x ``height`` RGBA pixels (row by row, not premultiplied).

    Raises:
        ValueError: larger than 100x100, or not ``width * height * 4`` bytes.
    """
    return encode(width, height, rgba)[0]


def encode(width: int, height: int, rgba: bytes) -> tuple[bytes, tuple[float, float, float]]:
    """The ThumbHash, and the average colour it starts from (red, green and blue from 0 to 1,
    each pixel weighted by its alpha; black for a picture transparent throughout).

    Raises:
        ValueError: as :func:`rgba_to_thumbhash`.
    """
    if not (0 < width <= 100 and 0 < height <= 100):
        raise ValueError(f"{width}x{height} doesn't fit in 100x100")
    pixels = np.frombuffer(rgba, dtype=np.uint8)
    if pixels.size != width * height * 4:
        raise ValueError(f"{pixels.size} bytes are not {width}x{height} RGBA pixels")
    r, g, b, a8 = (pixels[i::4].astype(np.float64) for i in range(4))
    alpha = a8 / 255
    weight = alpha / 255
    total_a = _sum(alpha)
    average = [_sum(weight * c) for c in (r, g, b)]
    if total_a:
        average = [value / total_a for value in average]
    has_alpha = total_a < width * height
    limit = 5 if has_alpha else 7
    lx = max(1, _round(limit * width / max(width, height)))
    ly = max(1, _round(limit * height / max(width, height)))
    # RGBA to LPQA, composited atop the average colour
    red, green, blue = (avg * (1 - alpha) + weight * c
                        for avg, c in zip(average, (r, g, b), strict=True))
    luma = (red + green + blue) / 3
    p = (red + green) / 2 - blue
    q = red - green

    def channel(values: Floats, nx: int, ny: int) -> tuple[float, list[float], float]:
        return _encode_channel(values.reshape(height, width), nx, ny)

    l_dc, l_ac, l_scale = channel(luma, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = channel(p, 3, 3)
    q_dc, q_ac, q_scale = channel(q, 3, 3)
    landscape = width > height
    header24 = (_round(63 * l_dc) | (_round(31.5 + 31.5 * p_dc) << 6)
                | (_round(31.5 + 31.5 * q_dc) << 12) | (_round(31 * l_scale) << 18)
                | (int(has_alpha) << 23))
    header16 = ((ly if landscape else lx) | (_round(63 * p_scale) << 3)
                | (_round(63 * q_scale) << 9) | (int(landscape) << 15))
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255,
           header16 >> 8]
    factors = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = channel(alpha, 5, 5)
        out.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))
        factors.append(a_ac)
    start = len(out)
    for index, factor in enumerate(f for ac in factors for f in ac):
        if start + (index >> 1) == len(out):
            out.append(0)
        out[start + (index >> 1)] |= _round(15 * factor) << ((index & 1) << 2)
    red_avg, green_avg, blue_avg = average
    return bytes(out), (red_avg, green_avg, blue_avg)


def thumbhash_to_rgba(thumbhash: bytes) -> tuple[int, int, bytes]:
    """The picture a ThumbHash stands for, at most 32 pixels a side: (width, height, RGBA).

    As the reference's ``thumbHashToRGBA`` (its sums in numpy's order: a placeholder, not a
    fixture, so a last bit does not matter; within one level of the reference's pixels).

    Raises:
        ValueError: too short to be a ThumbHash.
    """
    if len(thumbhash) < 5:
        raise ValueError("a ThumbHash has at least 5 bytes")
    header24 = thumbhash[0] | (thumbhash[1] << 8) | (thumbhash[2] << 16)
    header16 = thumbhash[3] | (thumbhash[4] << 8)
    l_dc, l_scale = (header24 & 63) / 63, ((header24 >> 18) & 31) / 31
    p_dc, q_dc = ((header24 >> 6) & 63) / 31.5 - 1, ((header24 >> 12) & 63) / 31.5 - 1
    has_alpha, landscape = bool(header24 >> 23), bool(header16 >> 15)
    p_scale, q_scale = ((header16 >> 3) & 63) / 63, ((header16 >> 9) & 63) / 63
    lx = max(3, (5 if has_alpha else 7) if landscape else header16 & 7)
    ly = max(3, header16 & 7 if landscape else (5 if has_alpha else 7))
    if has_alpha and len(thumbhash) < 6:
        raise ValueError("a ThumbHash with alpha has at least 6 bytes")
    a_dc, a_scale = ((thumbhash[5] & 15) / 15, (thumbhash[5] >> 4) / 15) if has_alpha \
        else (1.0, 0.0)
    nibbles = [(byte >> shift) & 15 for byte in thumbhash[6 if has_alpha else 5:]
               for shift in (0, 4)]
    channels = [(lx, ly, l_scale), (3, 3, p_scale * 1.25), (3, 3, q_scale * 1.25)]
    if has_alpha:
        channels.append((5, 5, a_scale))
    terms = [[(cx, cy) for cy in range(ny) for cx in range(0 if cy else 1, nx)
              if cx * ny < nx * (ny - cy)] for nx, ny, _ in channels]
    if sum(map(len, terms)) > len(nibbles):
        raise ValueError("the ThumbHash is cut short")
    ratio = _aspect(thumbhash)
    width = _round(32 if ratio > 1 else 32 * ratio)
    height = _round(32 / ratio if ratio > 1 else 32)
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    decoded, start = [], 0
    for (_, _, scale), dc, channel in zip(channels, (l_dc, p_dc, q_dc, a_dc), terms,
                                          strict=False):
        plane = np.full((height, width), dc)
        for index, (cx, cy) in enumerate(channel):
            factor = (nibbles[start + index] / 7.5 - 1) * scale
            plane += factor * np.cos(np.pi / width * xs * cx)[None, :] * \
                np.cos(np.pi / height * ys * cy)[:, None] * 2
        start += len(channel)
        decoded.append(plane)
    luma, p, q = decoded[:3]
    alpha = decoded[3] if has_alpha else np.ones((height, width))
    blue = luma - 2 / 3 * p
    red = (3 * luma - blue + q) / 2
    green = red - q
    rgba = np.stack([np.clip(255 * np.minimum(1, c), 0, 255) for c in (red, green, blue, alpha)],
                    axis=-1).astype(np.uint8)
    return width, height, rgba.tobytes()


def _aspect(thumbhash: bytes) -> float:
    """The reference's ``thumbHashToApproximateAspectRatio``."""
    header, has_alpha, landscape = thumbhash[3], thumbhash[2] & 0x80, thumbhash[4] & 0x80
    lx = (5 if has_alpha else 7) if landscape else header & 7
    ly = header & 7 if landscape else (5 if has_alpha else 7)
    return lx / ly


def _encode_channel(values: Floats, nx: int, ny: int) -> tuple[float, list[float], float]:
    """The DCT's constant term, its normalized varying terms and their scale.

    Every term's products are one column of a (pixels, terms) array, and the columns are summed
    down the pixels in their order: numpy adds the rows of an array reduced along its first
    axis one after another, each column's sum exactly the reference's loop (test_thumbhash.py
    checks it against a ``cumsum``, which is sequential by definition, and the fixtures)."""
    height, width = values.shape
    across, down = _basis(width, height, nx, ny)
    products = (values.reshape(-1, 1) * across) * down  # (c * fx) * fy, as the reference
    sums = np.add.reduce(products, axis=0) / (width * height)
    dc, ac = float(sums[0]), [float(f) for f in sums[1:]]
    scale = max((abs(f) for f in ac), default=0.0)
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return dc, ac, scale


@cache
def _basis(width: int, height: int, nx: int, ny: int) -> tuple[Floats, Floats]:
    """The cosines of every term the reference takes, in its order (cy, then cx), for every
    pixel in row order: (pixels, terms) across and down."""
    terms = [(cx, cy) for cy in range(ny) for cx in range(nx) if cx * ny < nx * (ny - cy)]
    across = np.stack([np.tile(_cosines(width, cx), height) for cx, _ in terms], axis=1)
    down = np.stack([np.repeat(_cosines(height, cy), width) for _, cy in terms], axis=1)
    across.setflags(write=False)
    down.setflags(write=False)
    return across, down


def _sum(values: Floats) -> float:
    """The sum in order, one addition after another, as the reference's loops add."""
    flat = values.ravel()
    return float(np.cumsum(flat)[-1]) if flat.size else 0.0


def _round(value: float) -> int:
    """JavaScript's ``Math.round``: the nearest integer, halves up."""
    floor = math.floor(value)
    return int(floor + 1 if value - floor >= 0.5 else floor)


@cache
def _cosines(size: int, frequency: int) -> Floats:
    """``cos(pi / size * frequency * (i + 0.5))`` for each pixel ``i``, as V8 computes it."""
    values = np.array([_cos(math.pi / size * frequency * (i + 0.5)) for i in range(size)])
    values.setflags(write=False)
    return values


# fdlibm's cosine (e_rem_pio2.c, k_cos.c, k_sin.c), as V8 carries it, for |x| < 2^19 pi/2.
_C = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
      -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)
_S = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
      2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_INVPIO2 = 6.36619772367581382433e-01
_PIO2 = ((1.57079632673412561417e+00, 6.07710050650619224932e-11),
         (6.07710050630396597660e-11, 2.02226624879595063154e-21),
         (2.02226624871116645580e-21, 8.47842766036889956997e-32))


def _cos(x: float) -> float:
    if _high(x) & 0x7FFFFFFF <= 0x3FE921FB:  # |x| <= pi/4
        return _kernel_cos(x, 0.0)
    n, y0, y1 = _rem_pio2(x)
    return (_kernel_cos(y0, y1), -_kernel_sin(y0, y1), -_kernel_cos(y0, y1),
            _kernel_sin(y0, y1))[n & 3]


def _high(x: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", x))[0] >> 32)


def _kernel_cos(x: float, y: float) -> float:
    c1, c2, c3, c4, c5, c6 = _C
    ix = _high(x) & 0x7FFFFFFF
    if ix < 0x3E400000 and int(x) == 0:
        return 1.0
    z = x * x
    r = z * (c1 + z * (c2 + z * (c3 + z * (c4 + z * (c5 + z * c6)))))
    if ix < 0x3FD33333:
        return 1.0 - (0.5 * z - (z * r - x * y))
    qx = 0.28125 if ix > 0x3FE90000 else \
        struct.unpack("<d", struct.pack("<q", (ix - 0x00200000) << 32))[0]
    return (1.0 - qx) - ((0.5 * z - qx) - (z * r - x * y))


def _kernel_sin(x: float, y: float) -> float:
    s1, s2, s3, s4, s5, s6 = _S
    if _high(x) & 0x7FFFFFFF < 0x3E400000 and int(x) == 0:
        return x
    z = x * x
    v = z * x
    r = s2 + z * (s3 + z * (s4 + z * (s5 + z * s6)))
    return x - ((z * (0.5 * y - v * r) - y) - v * s1)


def _rem_pio2(x: float) -> tuple[int, float, float]:
    """``x`` less the nearest multiple ``n`` of pi/2, as (n, head, tail)."""
    hx = _high(x)
    ix = hx & 0x7FFFFFFF
    (p1, p1t), (p2, p2t), (p3, p3t) = _PIO2
    if ix < 0x4002D97C:  # |x| < 3pi/4: n is 1 or -1
        sign = 1.0 if hx > 0 else -1.0
        z = x - sign * p1
        if ix != 0x3FF921FB:
            y0 = z - sign * p1t
            return int(sign), y0, (z - y0) - sign * p1t
        z -= sign * p2
        y0 = z - sign * p2t
        return int(sign), y0, (z - y0) - sign * p2t
    if ix > 0x413921FB:
        raise ValueError("only arguments below 2^19 pi/2")
    t = abs(x)
    n = int(t * _INVPIO2 + 0.5)
    fn = float(n)
    r = t - fn * p1
    w = fn * p1t
    y0 = r - w
    for step, bits in ((p2, p2t), (p3, p3t)):  # again while the first rounds cancelled
        if (ix >> 20) - ((_high(y0) >> 20) & 0x7FF) <= (16 if step == p2 else 49):
            break
        t = r
        w = fn * step
        r = t - w
        w = fn * bits - ((t - r) - w)
        y0 = r - w
    y1 = (r - y0) - w
    return (-n, -y0, -y1) if hx < 0 else (n, y0, y1)
