"""The looks: golden images from headless Chromium, and the filters.apply contract.

References: tests/fixtures/looks/references, made by scripts/cssgram-references.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import filters
from tests.helpers import FIXTURES

LOOKS = FIXTURES / "looks"
IMAGES = sorted(LOOKS.glob("*.png"))
NAMES = [n for n in filters.names() if n != "normal"]


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("name", NAMES)
def test_look_renders_like_the_browser(name: str) -> None:
    errors = []
    for image in IMAGES:
        reference = _rgb(LOOKS / "references" / f"{name}__{image.stem}.png").astype(np.int16)
        errors.append(np.abs(filters.apply(_rgb(image), name).astype(np.int16) - reference))
    error = np.concatenate([e.ravel() for e in errors])
    assert error.mean() <= 0.5, f"MAE {error.mean():.3f}"
    assert np.percentile(error, 99) <= 2
    assert error.max() <= 4


def test_there_are_26_looks_and_normal() -> None:
    assert len(NAMES) == 26 and "normal" in filters.names()
    assert len(IMAGES) >= 4 and all(max(Image.open(p).size) <= 256 for p in IMAGES)


def test_normal_is_the_identity_and_1977_is_an_alias() -> None:
    image = _rgb(IMAGES[0])
    assert np.array_equal(filters.apply(image, "normal"), image)
    assert np.array_equal(filters.apply(image, "1977"), filters.apply(image, "_1977"))


def test_apply_returns_a_new_array_and_never_touches_its_input() -> None:
    image = _rgb(IMAGES[0])
    before = image.copy()
    for name in filters.names():
        out = filters.apply(image, name)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert not np.shares_memory(out, image)
    assert np.array_equal(image, before)


def test_strength_mixes_original_and_look() -> None:
    image = _rgb(IMAGES[0])
    full = filters.apply(image, "clarendon")
    assert np.array_equal(filters.apply(image, "clarendon", 0.0), image)
    assert np.array_equal(filters.apply(image, "clarendon", 1.0), full)
    half = filters.apply(image, "clarendon", 0.5).astype(np.int16)
    expected = (image.astype(np.int16) + full.astype(np.int16)) / 2
    assert np.abs(half - expected).max() <= 1


def test_unknown_name_says_which_exist() -> None:
    with pytest.raises(filters.UnknownFilter, match=r"unknown filter 'sepia'.*clarendon"):
        filters.apply(_rgb(IMAGES[0]), "sepia")
    assert issubclass(filters.UnknownFilter, ValueError)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32)])
def test_apply_refuses_other_arrays(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        filters.apply(bad, "clarendon")


def test_strength_out_of_range() -> None:
    with pytest.raises(ValueError, match="strength"):
        filters.apply(_rgb(IMAGES[0]), "clarendon", 1.5)
