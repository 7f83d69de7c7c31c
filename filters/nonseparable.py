"""Flat non-separable overlays (``hue``, ``color``) on channel planes.

With a constant source S, Compositing 1's ``SetSat(S, Sat(B))`` is ``n x Sat(B)`` for the
constant vector ``n = SetSat(S, 1)``, and ``SetLum`` needs only ``Lum`` of that; so both modes
reduce to a shift along the grey axis followed by ``ClipColor``, with the same float arithmetic
as :func:`filters.blend.composite` from the 8-bit premultiplied source.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from filters.css import to_8bit
from filters.layers import Overlay, source8

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
NON_SEPARABLE = frozenset({"hue", "saturation", "color", "luminosity"})
LUM = (0.3, 0.59, 0.11)


def paint_flat(image: U8, overlay: Overlay) -> U8:
    """Composite a flat ``hue`` or ``color`` overlay onto ``image`` (8-bit in, 8-bit out)."""
    if overlay.mode not in ("hue", "color") or not isinstance(overlay.source, tuple):
        raise ValueError(f"no fast path for a {overlay.mode} overlay of {overlay.source!r}")
    s, sa = source8(overlay, 1, 1)
    colour = s / sa[0] if sa[0] else np.zeros(3)
    alpha = np.float32(sa[0] / 255 * overlay.opacity)
    b = [image[..., c].astype(np.float32) * np.float32(1 / 255) for c in range(3)]
    lum_b = b[0] * np.float32(LUM[0]) + b[1] * np.float32(LUM[1]) + b[2] * np.float32(LUM[2])
    if overlay.mode == "color":
        shifted = [np.float32(colour[c] - _lum(colour)) + lum_b for c in range(3)]
    else:
        spread = colour.max() - colour.min()
        unit = (colour - colour.min()) / spread if spread > 0 else np.zeros(3)
        sat_b = np.maximum(np.maximum(b[0], b[1]), b[2]) - np.minimum(np.minimum(b[0], b[1]), b[2])
        shifted = [sat_b * np.float32(unit[c] - _lum(unit)) + lum_b for c in range(3)]
    blended = _clip_color(shifted, lum_b)
    out = [b[c] * (1 - alpha) + blended[c] * alpha for c in range(3)]
    return np.stack([to_8bit(p) for p in out], axis=-1)


def _lum(c: npt.NDArray[np.float64]) -> float:
    return float(LUM[0] * c[0] + LUM[1] * c[1] + LUM[2] * c[2])


def _clip_color(c: list[F32], lum: F32) -> list[F32]:
    """``ClipColor``: pull colours back into [0, 1] along the line of constant luminosity."""
    low = np.minimum(np.minimum(c[0], c[1]), c[2])
    high = np.maximum(np.maximum(c[0], c[1]), c[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        below = np.where(low < 0, lum / (lum - low), np.float32(1))
        above = np.where(high > 1, (1 - lum) / (high - lum), np.float32(1))
    out = []
    for plane in c:
        lifted = np.where(low < 0, lum + (plane - lum) * below, plane)
        out.append(np.where(high > 1, lum + (lifted - lum) * above, lifted).astype(np.float32))
    return out
