"""Blend modes (W3C Compositing and Blending Level 1, section 10), on sRGB values in [0, 1].

``B`` is the backdrop, ``S`` the source; both are float arrays of shape (..., 3). Separable modes
work per channel; ``hue``, ``saturation``, ``color`` and ``luminosity`` use the spec's
``Lum``/``SetLum``/``Sat``/``SetSat`` with ``Lum(C) = 0.3 R + 0.59 G + 0.11 B``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.floating[Any]]
Mode = Callable[[F32, F32], F32]


def normal(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = Cs``."""
    return np.broadcast_to(s, np.broadcast_shapes(b.shape, s.shape)).astype(np.float32)


def multiply(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = Cb x Cs``."""
    return b * s


def screen(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = Cb + Cs - (Cb x Cs)``."""
    return b + s - b * s


def hard_light(b: F32, s: F32) -> F32:
    """``if Cs <= 0.5: Multiply(Cb, 2 x Cs) else: Screen(Cb, 2 x Cs - 1)``."""
    return np.where(s <= 0.5, multiply(b, 2 * s), screen(b, 2 * s - 1)).astype(np.float32)


def overlay(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = HardLight(Cs, Cb)``."""
    return hard_light(s, b)


def darken(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = min(Cb, Cs)``."""
    return np.minimum(b, s)


def lighten(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = max(Cb, Cs)``."""
    return np.maximum(b, s)


def color_dodge(b: F32, s: F32) -> F32:
    """``if Cb == 0: 0 elif Cs == 1: 1 else: min(1, Cb / (1 - Cs))``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dodged = np.minimum(1.0, b / (1.0 - s))
    return np.where(b == 0, 0.0, np.where(s >= 1, 1.0, dodged)).astype(np.float32)


def color_burn(b: F32, s: F32) -> F32:
    """``if Cb == 1: 1 elif Cs == 0: 0 else: 1 - min(1, (1 - Cb) / Cs)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        burnt = 1.0 - np.minimum(1.0, (1.0 - b) / s)
    return np.where(b >= 1, 1.0, np.where(s <= 0, 0.0, burnt)).astype(np.float32)


def soft_light(b: F32, s: F32) -> F32:
    """``if Cs <= 0.5: Cb - (1 - 2 Cs) Cb (1 - Cb) else: Cb + (2 Cs - 1)(D(Cb) - Cb)``,
    with ``D(Cb) = ((16 Cb - 12) Cb + 4) Cb if Cb <= 0.25 else sqrt(Cb)``.
    """
    d = np.where(b <= 0.25, ((16 * b - 12) * b + 4) * b, np.sqrt(b))
    dark = b - (1 - 2 * s) * b * (1 - b)
    light = b + (2 * s - 1) * (d - b)
    return np.where(s <= 0.5, dark, light).astype(np.float32)


def difference(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = |Cb - Cs|``."""
    return np.abs(b - s)


def exclusion(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = Cb + Cs - 2 x Cb x Cs``."""
    return b + s - 2 * b * s


def lum(c: F32) -> F32:
    """``Lum(C) = 0.3 x Cred + 0.59 x Cgreen + 0.11 x Cblue``, keeping the channel axis."""
    out: F32 = (0.3 * c[..., 0:1] + 0.59 * c[..., 1:2] + 0.11 * c[..., 2:3]).astype(np.float32)
    return out


def clip_color(c: F32) -> F32:
    """``ClipColor``: pull a colour back into [0, 1] along the line of constant luminosity."""
    lightness = lum(c)
    low, high = c.min(axis=-1, keepdims=True), c.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = lightness + (c - lightness) * lightness / (lightness - low)
        above = lightness + (c - lightness) * (1 - lightness) / (high - lightness)
    c = np.where(low < 0, below, c)
    out: F32 = np.where(high > 1, above, c).astype(np.float32)
    return out


def set_lum(c: F32, lightness: F32) -> F32:
    """``SetLum(C, l)``: shift C to luminosity l, then ``ClipColor``."""
    return clip_color(c + (lightness - lum(c)))


def sat(c: F32) -> F32:
    """``Sat(C) = max(C) - min(C)``."""
    out: F32 = (c.max(axis=-1, keepdims=True) - c.min(axis=-1, keepdims=True)).astype(np.float32)
    return out


def set_sat(c: F32, saturation: F32) -> F32:
    """``SetSat(C, s)``: stretch the (min, mid, max) of C to (0, s x (mid-min)/(max-min), s)."""
    low, high = c.min(axis=-1, keepdims=True), c.max(axis=-1, keepdims=True)
    spread = high - low
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (c - low) * saturation / spread
    result: F32 = np.where(spread > 0, out, 0.0).astype(np.float32)
    return result


def hue(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = SetLum(SetSat(Cs, Sat(Cb)), Lum(Cb))``."""
    s = np.broadcast_to(s, b.shape)
    return set_lum(set_sat(s, sat(b)), lum(b))


def saturation(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = SetLum(SetSat(Cb, Sat(Cs)), Lum(Cb))``."""
    s = np.broadcast_to(s, b.shape)
    return set_lum(set_sat(b, sat(s)), lum(b))


def color(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = SetLum(Cs, Lum(Cb))``."""
    return set_lum(np.broadcast_to(s, b.shape).astype(np.float32), lum(b))


def luminosity(b: F32, s: F32) -> F32:
    """``B(Cb, Cs) = SetLum(Cb, Lum(Cs))``."""
    return set_lum(b, lum(np.broadcast_to(s, b.shape).astype(np.float32)))


MODES: Mapping[str, Mode] = MappingProxyType({
    "normal": normal, "multiply": multiply, "screen": screen, "overlay": overlay,
    "darken": darken, "lighten": lighten, "color-dodge": color_dodge,
    "color-burn": color_burn, "hard-light": hard_light, "soft-light": soft_light,
    "difference": difference, "exclusion": exclusion, "hue": hue, "saturation": saturation,
    "color": color, "luminosity": luminosity,
})


def composite(b: F32, s: F32 | np.floating[Any], alpha: F32 | float, mode: str) -> F32:
    """Source-over with blending: ``(1 - a) x Cb + a x B(Cb, Cs)`` for an opaque backdrop."""
    out: F32 = (1 - alpha) * b + alpha * MODES[mode](b, np.asarray(s, dtype=b.dtype))
    return out
