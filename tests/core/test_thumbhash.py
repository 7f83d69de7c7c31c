"""photopipe's ThumbHash encoder gives the reference's bytes (tests/fixtures/thumbhash: hashes
made by the JavaScript package on the npm registry, with the script that made them)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.thumbhash import rgba_to_thumbhash, thumbhash_to_rgba

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "thumbhash"
MADE = json.loads((FIXTURES / "expected.json").read_text())
EXPECTED: dict[str, str] = MADE["hashes"]


def test_the_fixtures_cover_what_they_should() -> None:
    sizes = {}
    for name in EXPECTED:
        with Image.open(FIXTURES / f"{name}.png") as picture:
            alpha = picture.convert("RGBA").getchannel("A").tobytes()
            sizes[name] = (picture.size, min(alpha) < 255)
    assert len(sizes) >= 20
    assert any(w > h for (w, h), _ in sizes.values())  # landscape
    assert any(w < h for (w, h), _ in sizes.values())  # portrait
    assert any(alpha for _, alpha in sizes.values())
    assert any(w % 2 and h % 2 for (w, h), _ in sizes.values())  # odd sizes
    assert ((1, 1), False) in sizes.values()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_hash_is_the_reference_s(name: str) -> None:
    with Image.open(FIXTURES / f"{name}.png") as picture:
        rgba = picture.convert("RGBA")
    found = rgba_to_thumbhash(rgba.width, rgba.height, rgba.tobytes())
    assert base64.b64encode(found).decode() == EXPECTED[name]


@pytest.mark.parametrize(("width", "height", "size"), [(101, 10, 4040), (10, 101, 4040),
                                                       (0, 10, 0), (10, 10, 399)])
def test_what_is_not_a_thumbhash_picture_is_refused(width: int, height: int, size: int) -> None:
    with pytest.raises(ValueError):
        rgba_to_thumbhash(width, height, b"\0" * size)


def test_numpy_sums_the_columns_of_a_reduction_in_order() -> None:
    """The encoder's sums rely on it: each column of ``np.add.reduce(a, axis=0)`` equals the
    sequential sum down that column (``cumsum`` is sequential by definition)."""
    rng = np.random.default_rng(7)
    for rows, columns in ((1, 1), (3, 40), (2304, 28), (10_000, 6)):
        values = rng.normal(0, 1e3, (rows, columns)) * rng.random((rows, columns)) ** 9
        assert np.array_equal(np.add.reduce(values, axis=0), np.cumsum(values, axis=0)[-1])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_hash_draws_the_reference_s_picture(name: str) -> None:
    width, height, rgba = thumbhash_to_rgba(base64.b64decode(EXPECTED[name]))
    drawn = MADE["drawn"][name]
    assert (width, height) == (drawn["w"], drawn["h"])
    assert hashlib.sha256(rgba).hexdigest() == drawn["sha256"]


@pytest.mark.parametrize("cut", [b"", b"\x01\x02\x03\x04", b"\x01\x02\x83\x04\x05"])
def test_what_is_not_a_thumbhash_is_refused(cut: bytes) -> None:
    with pytest.raises(ValueError):
        thumbhash_to_rgba(cut)
