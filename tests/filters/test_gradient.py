"""Gradients: stop placement, premultiplied interpolation, farthest-corner circles, dither."""

from __future__ import annotations

import numpy as np

from filters.gradient import (
    CLEAR,
    Stop,
    dither,
    gradient_t,
    linear_down,
    linear_right,
    radial,
    rasterise,
    stop_positions,
)


def test_missing_positions_are_spread_evenly() -> None:
    stops = (Stop(CLEAR), Stop(CLEAR), Stop(CLEAR, .6), Stop(CLEAR), Stop(CLEAR))
    np.testing.assert_allclose(stop_positions(stops), [0, .3, .6, .8, 1])
    assert stop_positions((Stop(CLEAR, .5), Stop(CLEAR, .2))) == [.5, .5]


def test_linear_positions_are_pixel_centres() -> None:
    np.testing.assert_allclose(gradient_t(linear_right(Stop(CLEAR), Stop(CLEAR)), 4, 1)[0],
                               [.125, .375, .625, .875])
    assert gradient_t(linear_down(Stop(CLEAR), Stop(CLEAR)), 1, 2)[:, 0].tolist() == [.25, .75]


def test_radial_reaches_one_at_the_farthest_corner() -> None:
    t = gradient_t(radial(Stop(CLEAR), Stop(CLEAR)), 200, 100)
    corner = np.hypot(99.5, 49.5) / np.hypot(100, 50)
    assert abs(t[0, 0] - corner) < 1e-9 and t.min() < 0.01
    off = gradient_t(radial(Stop(CLEAR), Stop(CLEAR), at=(.4, .4)), 100, 100)
    assert abs(off[99, 99] - np.hypot(59.5, 59.5) / np.hypot(60, 60)) < 1e-9


def test_fading_to_transparent_keeps_the_colour() -> None:
    colour, alpha = rasterise(linear_right(Stop((200, 100, 50, 1.0), 0), Stop(CLEAR, 1)), 64, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        unpremul = colour[0, :48] / alpha[0, :48]
    np.testing.assert_allclose(unpremul * 255, np.tile([200, 100, 50], (48, 1)), atol=12)
    assert alpha[0, 0, 0] > 250 and alpha[0, -1, 0] < 5


def test_dither_is_under_half_a_level_and_balanced() -> None:
    d = dither(8, 8)
    assert d.max() < 0.5 and d.min() > -0.5 and len(np.unique(d)) == 64
    assert abs(d.mean()) < 0.02
