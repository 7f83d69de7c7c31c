"""Resampling: a tall output is made in bands, and matches a single pass."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.core.renditions import BAND_ROWS, RESAMPLE, resize


def _photo_like(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(7)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) % 97 * 2.5], axis=-1)
    base[height // 3: height // 2] = 255 - base[height // 3: height // 2]  # hard edges
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def test_banded_resize_matches_one_pass() -> None:
    source = _photo_like((2016, 1512))
    target = (1440, 1080)
    assert target[1] > 2 * BAND_ROWS  # so the bands are exercised
    banded = np.asarray(resize(source, target), dtype=int)
    single = np.asarray(source.resize(target, RESAMPLE), dtype=int)
    difference = np.abs(banded - single)
    assert banded.shape == single.shape
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01


def test_small_outputs_and_same_size_take_one_pass() -> None:
    source = _photo_like((640, 480))
    assert resize(source, (640, 480)) is source
    assert np.array_equal(np.asarray(resize(source, (320, 240))),
                          np.asarray(source.resize((320, 240), RESAMPLE)))
