"""CSS filter functions against the Filter Effects 1 formulas, on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from filters import css


def px(*rgb: float) -> np.ndarray:
    return np.array([[rgb]], dtype=np.float32)


def test_brightness_scales_and_clamps() -> None:
    out = css.brightness(1.5)(px(0.0, 0.5, 0.8))
    np.testing.assert_allclose(out, px(0.0, 0.75, 1.0))


def test_contrast_pivots_on_one_half() -> None:
    np.testing.assert_allclose(css.contrast(2)(px(0.5, 0.25, 1.0)), px(0.5, 0.0, 1.0))
    np.testing.assert_allclose(css.contrast(0)(px(0.1, 0.9, 0.3)), px(0.5, 0.5, 0.5))
    np.testing.assert_allclose(css.contrast(0.9)(px(0.0, 1.0, 0.6)), px(0.05, 0.95, 0.59),
                               atol=1e-6)


def test_saturate_zero_is_luma_and_one_is_identity() -> None:
    colour = px(0.9, 0.2, 0.4)
    grey = 0.213 * 0.9 + 0.715 * 0.2 + 0.072 * 0.4
    np.testing.assert_allclose(css.saturate(0)(colour), px(grey, grey, grey), atol=1e-6)
    np.testing.assert_allclose(css.saturate(1)(colour), colour, atol=1e-6)


def test_saturate_clamps_out_of_gamut_results() -> None:
    out = css.saturate(3)(px(1.0, 0.0, 0.0))
    np.testing.assert_allclose(out, px(1.0, 0.0, 0.0))  # 0.213 + 0.787 * 3 > 1, 0.213 - .639 < 0


def test_sepia_one_is_the_spec_matrix() -> None:
    out = css.sepia(1)(px(0.2, 0.4, 0.6))
    expected = (0.393 * .2 + 0.769 * .4 + 0.189 * .6, 0.349 * .2 + 0.686 * .4 + 0.168 * .6,
                0.272 * .2 + 0.534 * .4 + 0.131 * .6)
    np.testing.assert_allclose(out, px(*expected), atol=1e-6)
    np.testing.assert_allclose(css.sepia(2)(px(0.2, 0.4, 0.6)), out)  # amounts cap at 1


def test_grayscale_uses_rec709_weights() -> None:
    grey = 0.2126 * 0.3 + 0.7152 * 0.6 + 0.0722 * 0.9
    np.testing.assert_allclose(css.grayscale(1)(px(0.3, 0.6, 0.9)), px(grey, grey, grey),
                               atol=1e-6)
    half = css.grayscale(0.5)(px(1.0, 0.0, 0.0))
    np.testing.assert_allclose(half[0, 0, 0], 0.2126 + 0.7874 * 0.5, atol=1e-6)


def test_hue_rotate_keeps_grey_and_full_turn_is_identity() -> None:
    np.testing.assert_allclose(css.hue_rotate(123)(px(0.4, 0.4, 0.4)), px(0.4, 0.4, 0.4),
                               atol=1e-6)
    np.testing.assert_allclose(css.hue_rotate(360)(px(0.7, 0.1, 0.3)), px(0.7, 0.1, 0.3),
                               atol=1e-6)
    rotated = css.hue_rotate(-10)(px(0.7, 0.1, 0.3))
    assert rotated[0, 0, 2] > 0.3  # a red-magenta turns towards magenta when rotated back


def test_chain_clamps_after_every_function() -> None:
    # Without the clamp, brightness(2) then brightness(.5) would give 0.9 back.
    out = css.run_chain(px(0.9, 0.1, 0.0), (css.brightness(2), css.brightness(0.5)))
    np.testing.assert_allclose(out, px(0.5, 0.1, 0.0))


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="contrast"):
        css.contrast(-1)
