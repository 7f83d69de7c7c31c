"""CSS gradients (CSS Images Level 3) rasterised as a browser does, into 8-bit premultiplied RGBA.

Colour stops are interpolated in premultiplied RGBA (so ``X -> transparent`` keeps the colour X and
only fades its alpha), sampled at pixel centres, then an 8x8 ordered dither of under half a level
is added before quantising (Skia's raster-pipeline ``dither`` stage), as Chromium does.
What a rasterised layer means for a look depends only on the gradient and the picture size, so
compiled looks keep it per size.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
RGBA = tuple[float, float, float, float]  # 0-255 colour, 0-1 alpha
CLEAR: RGBA = (0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Stop:
    """A colour stop: an RGBA colour at a position along the gradient line (None: evenly spaced)."""

    colour: RGBA
    position: float | None = None


@dataclass(frozen=True)
class Gradient:
    """``linear-gradient(to right|to bottom, ...)`` or ``radial-gradient(circle farthest-corner
    at cx cy, ...)``, with the centre as fractions of the width and height."""

    kind: str  # "right", "down" or "radial"
    stops: tuple[Stop, ...]
    centre: tuple[float, float] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if self.kind not in ("right", "down", "radial"):
            raise ValueError(f"unknown gradient kind {self.kind!r}")
        if len(self.stops) < 2:
            raise ValueError("a gradient needs at least two colour stops")


def linear_right(*stops: Stop) -> Gradient:
    return Gradient("right", stops)


def linear_down(*stops: Stop) -> Gradient:
    return Gradient("down", stops)


def radial(*stops: Stop, at: tuple[float, float] = (0.5, 0.5)) -> Gradient:
    return Gradient("radial", stops, at)


def gradient_t(gradient: Gradient, width: int, height: int) -> F64:
    """The gradient-line position of every pixel centre, shape (H, W)."""
    x = (np.arange(width, dtype=np.float64) + 0.5)[None, :]
    y = (np.arange(height, dtype=np.float64) + 0.5)[:, None]
    if gradient.kind == "right":
        return np.broadcast_to(x / width, (height, width))
    if gradient.kind == "down":
        return np.broadcast_to(y / height, (height, width))
    cx, cy = gradient.centre[0] * width, gradient.centre[1] * height
    radius = np.hypot(max(cx, width - cx), max(cy, height - cy))  # farthest corner
    t: F64 = np.hypot(x - cx, y - cy) / radius
    return t


def stop_positions(stops: tuple[Stop, ...]) -> list[float]:
    """Positions with the CSS fix-ups: first 0 and last 1 by default, gaps spread evenly,
    and no stop before the one preceding it."""
    raw = [s.position for s in stops]
    raw[0] = 0.0 if raw[0] is None else raw[0]
    raw[-1] = 1.0 if raw[-1] is None else raw[-1]
    known = [i for i, p in enumerate(raw) if p is not None]
    for left, right in pairwise(known):
        start, end = raw[left], raw[right]
        assert start is not None and end is not None
        for i in range(left + 1, right):
            raw[i] = start + (end - start) * (i - left) / (right - left)
    out: list[float] = []
    for p in raw:
        out.append(max(float(p if p is not None else 0.0), out[-1] if out else -np.inf))
    return out


def dither(width: int, height: int) -> F64:
    """Skia's 8x8 ordered dither, in (-0.5, 0.5) levels, for every pixel (shape (H, W))."""
    x = np.arange(width, dtype=np.int64)[None, :]
    y = np.arange(height, dtype=np.int64)[:, None] ^ x
    m = ((y & 1) << 5 | (x & 1) << 4 | (y & 2) << 2 | (x & 2) << 1 | (y & 4) >> 1 | (x & 4) >> 2)
    out: F64 = (m * (2 / 128) - 63 / 128).astype(np.float64)
    return out


def rasterise(gradient: Gradient, width: int, height: int) -> tuple[I32, I32]:
    """The gradient as an 8-bit premultiplied layer: colour (H, W, 3) and alpha (H, W, 1).

    Not cached: a layer is 16 bytes a pixel, and the compiled looks keep only the distinct
    values they need (see :mod:`filters.compile`).
    """
    t = gradient_t(gradient, width, height)
    positions = stop_positions(gradient.stops)
    premul = np.array([[c[0] / 255 * c[3], c[1] / 255 * c[3], c[2] / 255 * c[3], c[3]]
                       for c in (s.colour for s in gradient.stops)])
    alpha = np.interp(t, positions, premul[:, 3])
    noise = dither(width, height) / 255
    colour8 = np.empty((height, width, 3), dtype=np.int32)
    for k in range(3):  # one channel at a time: the float temporaries stay one plane each
        level = np.clip(np.interp(t, positions, premul[:, k]) + noise, 0, alpha)
        colour8[..., k] = np.floor(level * 255 + 0.5)
    alpha8 = np.floor(alpha * 255 + 0.5).astype(np.int32)[..., None]
    return colour8, alpha8
