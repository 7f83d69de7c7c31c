"""Blend modes against the Compositing 1 formulas, at their edge values and branch points."""

from __future__ import annotations

import numpy as np
import pytest

from filters import blend
from filters.layers import Overlay, blend_int, paint

V = np.array([0.0, 0.25, 0.5, 0.75, 1.0], dtype=np.float32)
B, S = np.meshgrid(V, V, indexing="ij")


def c(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None], 3, axis=-1).astype(np.float32)


@pytest.mark.parametrize(("mode", "formula"), [
    ("normal", lambda b, s: s),
    ("multiply", lambda b, s: b * s),
    ("screen", lambda b, s: b + s - b * s),
    ("darken", np.minimum),
    ("lighten", np.maximum),
    ("difference", lambda b, s: np.abs(b - s)),
    ("exclusion", lambda b, s: b + s - 2 * b * s),
    ("hard-light", lambda b, s: np.where(s <= .5, 2 * b * s, 1 - 2 * (1 - b) * (1 - s))),
    ("overlay", lambda b, s: np.where(b <= .5, 2 * b * s, 1 - 2 * (1 - b) * (1 - s))),
])
def test_separable_modes(mode: str, formula: object) -> None:
    assert callable(formula)
    np.testing.assert_allclose(blend.MODES[mode](c(B), c(S)), c(formula(B, S)), atol=1e-6)


def test_overlay_branch_point_is_the_backdrop_half() -> None:
    out = blend.overlay(c(np.array([0.5])), c(np.array([0.8])))
    np.testing.assert_allclose(out, c(np.array([0.8])))  # 2 * .5 * .8: the multiply branch


def test_color_dodge_and_burn_edges() -> None:
    dodge = blend.color_dodge(c(np.array([0.0, 0.5, 0.5, 0.2])), c(np.array([1.0, 1.0, 0.5, 0.5])))
    np.testing.assert_allclose(dodge[..., 0], [0.0, 1.0, 1.0, 0.4], atol=1e-6)
    burn = blend.color_burn(c(np.array([1.0, 0.5, 0.5, 0.8])), c(np.array([0.0, 0.0, 1.0, 0.5])))
    np.testing.assert_allclose(burn[..., 0], [1.0, 0.0, 0.5, 0.6], atol=1e-6)


def test_soft_light_both_branches_and_d_switch() -> None:
    b = np.array([0.25, 0.25, 0.16, 0.64], dtype=np.float32)
    s = np.array([0.5, 1.0, 1.0, 1.0], dtype=np.float32)
    out = blend.soft_light(c(b), c(s))[..., 0]
    d_low = ((16 * 0.16 - 12) * 0.16 + 4) * 0.16
    np.testing.assert_allclose(out, [0.25, 0.25 + (((16 * .25 - 12) * .25 + 4) * .25 - .25),
                                     0.16 + (d_low - 0.16), 0.8], atol=1e-6)


def test_non_separable_modes_keep_or_take_luminosity() -> None:
    backdrop = np.array([[[0.8, 0.3, 0.1]]], dtype=np.float32)
    source = np.array([[[0.1, 0.2, 0.9]]], dtype=np.float32)
    for mode in ("hue", "saturation", "color"):
        out = blend.MODES[mode](backdrop, source)
        np.testing.assert_allclose(blend.lum(out), blend.lum(backdrop), atol=1e-6)
        assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(blend.lum(blend.luminosity(backdrop, source)),
                               blend.lum(source), atol=1e-6)
    grey = np.full((1, 1, 3), 0.5, dtype=np.float32)
    np.testing.assert_allclose(blend.hue(grey, source), grey, atol=1e-6)  # no saturation to keep


def test_integer_blends_match_the_float_formulas_within_a_level() -> None:
    d = np.arange(256, dtype=np.int32)[:, None]
    for mode in ("normal", "multiply", "screen", "darken", "lighten", "exclusion", "overlay"):
        for colour, alpha in ((200, 255), (37, 128), (0, 0), (255, 255)):
            sa, s = np.array([alpha]), np.array([round(colour * alpha / 255)])
            out = blend_int(d, s, sa, mode).astype(np.float32)[:, 0]
            effective = np.float32(s[0] / alpha if alpha else 0.0)  # the 8-bit premultiplied colour
            expect = blend.composite(d[:, 0] / 255, effective, alpha / 255, mode)
            # div255 is off by under a level; exclusion doubles it.
            bound = 2.0 if mode == "exclusion" else 1.5
            assert np.abs(out - expect * 255).max() <= bound, (mode, colour, alpha)


def test_paint_never_touches_its_input() -> None:
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    out = paint(image, Overlay("soft-light", (240, 149, 128, .2)))
    assert (image == 100).all() and out is not image


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="blend mode"):
        Overlay("dissolve", (0, 0, 0, 1))
