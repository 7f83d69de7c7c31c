"""Resampling: a tall output with a large intermediate is made in bands, and matches a single
pass; a small one takes one pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipeline.core.renditions import BAND_ROWS, ONE_PASS_BYTES, RESAMPLE, resize


def _photo_like(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(7)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) % 97 * 2.5], axis=-1)
    base[height // 3: height // 2] = 255 - base[height // 3: height // 2]  # hard edges
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _passes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The sizes Pillow is asked to resample to, call by call."""
    calls: list[tuple[int, int]] = []
    original = Image.Image.resize

    def counted(self: Image.Image, size: tuple[int, int], *args: Any, **kwargs: Any) -> Any:
        calls.append(size)
        return original(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", counted)
    return calls


def test_banded_resize_matches_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    source = _photo_like((2016, 1512))
    target = (1440, 1080)  # a 12 MP photo's default working picture: 8.7 MB in one pass
    assert target[0] * source.height * 4 > ONE_PASS_BYTES
    passes = _passes(monkeypatch)
    banded = np.asarray(resize(source, target), dtype=int)
    assert passes == [(1440, BAND_ROWS)] * 4 + [(1440, 1080 - 4 * BAND_ROWS)]
    monkeypatch.undo()
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


def test_a_small_intermediate_takes_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    source = _photo_like((1008, 756))  # a 12 MP photo decoded at a quarter, for the classic
    target = (816, 612)  # ladder: taller than two bands, 2.5 MB in one pass
    assert target[1] > 2 * BAND_ROWS and target[0] * source.height * 4 <= ONE_PASS_BYTES
    passes = _passes(monkeypatch)
    out = resize(source, target)
    assert passes == [target]
    monkeypatch.undo()
    assert np.array_equal(np.asarray(out), np.asarray(source.resize(target, RESAMPLE)))


def test_one_pass_ends_at_its_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    width = ONE_PASS_BYTES // 4 // 1024  # an intermediate of exactly the limit...
    source = _photo_like((2 * width, 1024))
    passes = _passes(monkeypatch)
    resize(source, (width, 2 * BAND_ROWS + 1))
    assert len(passes) == 1
    passes.clear()
    resize(source, (width + 1, 2 * BAND_ROWS + 1))  # ...and one column more
    assert len(passes) == 3
