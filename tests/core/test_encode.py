"""The encoder honours every encoding setting (each is a PHOTOPIPE_* variable)."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from pipeline.core.encode import encode
from pipeline.settings import Encoding
from tests.helpers import PHOTOS


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    with Image.open(PHOTOS / "real" / "htc_desire_phone_gps.jpg") as image:
        image.draft("RGB", (640, 480))
        return image.convert("RGB")


def _frame_marker(data: bytes) -> int:
    """The JPEG's start-of-frame marker: 0xC0 baseline, 0xC2 progressive."""
    index = 2
    while data[index] == 0xFF:
        marker, length = data[index + 1], int.from_bytes(data[index + 2:index + 4], "big")
        if 0xC0 <= marker <= 0xC3:
            return marker
        index += 2 + length
    raise AssertionError("no frame header")


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def test_progressive_by_default_and_baseline_when_asked(picture: Image.Image) -> None:
    progressive = encode(picture, "jpg", Encoding())
    baseline = encode(picture, "jpg", Encoding(jpeg_progressive=False))
    assert (_frame_marker(progressive), _frame_marker(baseline)) == (0xC2, 0xC0)
    assert np.array_equal(_pixels(progressive), _pixels(baseline))  # same pixels, other bytes
    assert len(progressive) < len(baseline)


def test_optimised_huffman_tables_shrink_a_baseline_file(picture: Image.Image) -> None:
    plain = Encoding(jpeg_progressive=False, jpeg_optimize=False)
    standard, optimised = (encode(picture, "jpg", e) for e in (plain, replace(
        plain, jpeg_optimize=True)))
    assert len(optimised) < len(standard)
    assert np.array_equal(_pixels(optimised), _pixels(standard))


@pytest.mark.parametrize(("subsampling", "code"), [("4:4:4", 0), ("4:2:2", 1), ("4:2:0", 2)])
def test_chroma_subsampling_is_the_setting(picture: Image.Image, subsampling: str,
                                           code: int) -> None:
    data = encode(picture, "jpg", Encoding(jpeg_subsampling=subsampling))
    with Image.open(io.BytesIO(data)) as image:
        assert JpegImagePlugin.get_sampling(image) == code


def test_quality_and_webp_method_reach_the_encoders(picture: Image.Image) -> None:
    assert len(encode(picture, "jpg", Encoding(jpeg_quality=95))) > len(
        encode(picture, "jpg", Encoding(jpeg_quality=60)))
    assert len(encode(picture, "webp", Encoding(webp_quality=95))) > len(
        encode(picture, "webp", Encoding(webp_quality=60)))
    fast, small = (encode(picture, "webp", Encoding(webp_method=m)) for m in (0, 6))
    assert len(small) < len(fast)
