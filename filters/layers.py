"""Overlays, composited onto the picture the way a browser paints ``::before`` and ``::after``.

Each overlay is blended into an 8-bit layer. Flat colours and rasterised gradients are 8-bit
premultiplied sources (``sa = round(255 a)``, ``s = round(c sa / 255)``). For normal, multiply,
screen, darken, lighten, exclusion and overlay the browser blends in 8-bit integers (Skia's
low-precision pipeline, ``div255(v) = (v + 255) >> 8``); the other modes run in float from the
8-bit premultiplied colour, with the pseudo-element's opacity applied as a float.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from filters import blend
from filters.css import to_8bit
from filters.gradient import RGBA, Gradient, rasterise

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
INTEGER_MODES = frozenset({"normal", "multiply", "screen", "darken", "lighten", "exclusion",
                           "overlay"})


@dataclass(frozen=True)
class Overlay:
    """A pseudo-element covering the picture: a flat colour or a gradient, a blend mode, and
    the element's ``opacity``."""

    mode: str
    source: RGBA | Gradient
    opacity: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in blend.MODES:
            raise ValueError(f"unknown blend mode {self.mode!r}")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError("opacity must be between 0 and 1")


def source8(overlay: Overlay, width: int, height: int) -> tuple[I32, I32]:
    """The overlay as an 8-bit premultiplied source: colour (..., 3) and alpha (..., 1)."""
    if isinstance(overlay.source, Gradient):
        return rasterise(overlay.source, width, height)
    r, g, b, a = overlay.source
    sa = int(np.floor(255 * a + 0.5))
    colour = np.floor(np.array([r, g, b]) * sa / 255 + 0.5).astype(np.int32)
    return colour, np.array([sa], dtype=np.int32)


def paint(image: U8, overlay: Overlay) -> U8:
    """Composite ``overlay`` onto the opaque 8-bit ``image``; return the new 8-bit layer."""
    s, sa = source8(overlay, image.shape[1], image.shape[0])
    return paint_source(image, s, sa, overlay)


def paint_source(image: U8, s: I32, sa: I32, overlay: Overlay) -> U8:
    """Composite the 8-bit premultiplied source (s, sa), with ``overlay``'s mode and opacity."""
    if overlay.mode in INTEGER_MODES:
        if overlay.opacity < 1.0:
            op = int(np.floor(overlay.opacity * 255 + 0.5))
            s, sa = _div255(s * op), _div255(sa * op)
        return blend_int(image.astype(np.int32), s, sa, overlay.mode)
    return _blend_float(image, s, sa, overlay)


def blend_int(d: I32, s: I32, sa: I32, mode: str) -> U8:
    """Skia's 8-bit premultiplied blend of source (s, sa) over an opaque backdrop d."""
    if mode == "normal":
        out = s + ((d * (256 - sa)) >> 8)
    elif mode == "multiply":
        out = _div255(d * (255 - sa) + s * d)
    elif mode == "screen":
        out = s + d - (2 * s * d + 255) // 510
    elif mode == "darken":
        out = s + d - _div255(np.maximum(s * 255, d * sa))
    elif mode == "lighten":
        out = s + d - _div255(np.minimum(s * 255, d * sa))
    elif mode == "exclusion":
        out = s + d - 2 * _div255(s * d)
    else:  # overlay = hard-light with the layers swapped
        light = np.where(2 * d <= 255, 2 * s * d, sa * 255 - 2 * (sa - s) * (255 - d))
        out = _div255(d * (255 - sa) + light)
    return np.clip(out, 0, 255).astype(np.uint8)


def _blend_float(image: U8, s: I32, sa: I32, overlay: Overlay) -> U8:
    backdrop = image.astype(np.float32) / 255
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.where(sa > 0, s / np.maximum(sa, 1), 0.0).astype(np.float32)
    alpha = (sa / 255 * overlay.opacity).astype(np.float32)
    return to_8bit(blend.composite(backdrop, colour, alpha, overlay.mode))


def _div255(v: I32) -> I32:
    out: I32 = (v + 255) >> 8
    return out
