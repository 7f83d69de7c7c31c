"""The encoders honour every encoding setting (each is a PHOTOPIPE_* variable)."""

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


TURBO = Encoding(jpeg_encoder="libjpeg-turbo")


def _markers(data: bytes) -> list[int]:
    """The JPEG's markers up to its first scan."""
    index, found = 2, []
    while data[index] == 0xFF and data[index + 1] != 0xDA:
        found.append(data[index + 1])
        index += 2 + int.from_bytes(data[index + 2:index + 4], "big")
    return found


def test_jpegli_by_default_writes_baseline_4_2_0_and_nothing_but_the_picture(
        picture: Image.Image) -> None:
    data = encode(picture, "jpg", Encoding())
    assert set(_markers(data)) == {0xDB, 0xC0, 0xC4}  # tables and frame: no APPn, no COM
    with Image.open(io.BytesIO(data)) as image:
        assert (image.size, image.mode) == (picture.size, "RGB")  # a wide picture stays wide
        assert JpegImagePlugin.get_sampling(image) == 2
    ours = _pixels(data).astype(float)
    turbo = _pixels(encode(picture, "jpg", TURBO)).astype(float)
    source = np.asarray(picture).astype(float)
    assert np.abs(ours - source).mean() < 3.0
    assert np.abs(ours - turbo).mean() < 2.0


def test_each_encoder_has_its_own_default_quality(picture: Image.Image) -> None:
    """jpegli's 88 scores at least as well as libjpeg-turbo's 85 (benchmarks/perceptual.py)."""
    assert (Encoding().quality, TURBO.quality) == (88, 85)
    assert encode(picture, "jpg", Encoding()) == encode(picture, "jpg", Encoding(
        jpeg_quality=88)) != encode(picture, "jpg", Encoding(jpeg_quality=85))
    assert encode(picture, "jpg", TURBO) == encode(picture, "jpg", replace(
        TURBO, jpeg_quality=85)) != encode(picture, "jpg", replace(TURBO, jpeg_quality=88))


def test_jpegli_takes_a_grey_picture_too(picture: Image.Image) -> None:
    data = encode(picture.convert("L"), "jpg", Encoding())
    assert _pixels(data).shape == (picture.height, picture.width, 3)


@pytest.mark.parametrize("setting", [{"jpeg_progressive": False}, {"jpeg_optimize": True},
                                     {"jpeg_subsampling": "4:2:0"}])
def test_libjpeg_turbos_settings_with_jpegli_are_refused(setting: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(setting))}.*libjpeg-turbo"):
        Encoding(**setting)  # type: ignore[arg-type]
    Encoding(jpeg_encoder="libjpeg-turbo", **setting)  # type: ignore[arg-type]


def test_an_unknown_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="jpeg_encoder"):
        Encoding(jpeg_encoder="mozjpeg")


def test_progressive_by_default_and_baseline_when_asked(picture: Image.Image) -> None:
    progressive = encode(picture, "jpg", TURBO)
    baseline = encode(picture, "jpg", replace(TURBO, jpeg_progressive=False))
    assert (_frame_marker(progressive), _frame_marker(baseline)) == (0xC2, 0xC0)
    assert np.array_equal(_pixels(progressive), _pixels(baseline))  # same pixels, other bytes
    assert len(progressive) < len(baseline)


def test_optimised_huffman_tables_shrink_a_baseline_file(picture: Image.Image) -> None:
    plain = replace(TURBO, jpeg_progressive=False, jpeg_optimize=False)
    standard, optimised = (encode(picture, "jpg", e) for e in (plain, replace(
        plain, jpeg_optimize=True)))
    assert len(optimised) < len(standard)
    assert np.array_equal(_pixels(optimised), _pixels(standard))


@pytest.mark.parametrize(("subsampling", "code"), [("4:4:4", 0), ("4:2:2", 1), ("4:2:0", 2)])
def test_chroma_subsampling_is_the_setting(picture: Image.Image, subsampling: str,
                                           code: int) -> None:
    data = encode(picture, "jpg", replace(TURBO, jpeg_subsampling=subsampling))
    with Image.open(io.BytesIO(data)) as image:
        assert JpegImagePlugin.get_sampling(image) == code


@pytest.mark.parametrize("jpeg", [Encoding(), TURBO])
def test_quality_and_webp_method_reach_the_encoders(picture: Image.Image,
                                                     jpeg: Encoding) -> None:
    assert len(encode(picture, "jpg", replace(jpeg, jpeg_quality=95))) > len(
        encode(picture, "jpg", replace(jpeg, jpeg_quality=60)))
    assert len(encode(picture, "webp", Encoding(webp_quality=95))) > len(
        encode(picture, "webp", Encoding(webp_quality=60)))
    fast, small = (encode(picture, "webp", Encoding(webp_method=m)) for m in (0, 6))
    assert len(small) < len(fast)
