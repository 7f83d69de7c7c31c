"""Safe decoding: the allow-list, the limits, and every hostile file in the corpus."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from pipeline import errors
from pipeline.core.decode import decode, read_orientation, sniff
from pipeline.settings import Limits
from tests.helpers import CORPUS, PHOTOS

# What each hostile file must come to, from its MANIFEST.tsv note: "ready" for valid pictures
# with broken metadata or a misleading name, else the error code it is rejected with.
HOSTILE = {
    "bad_exif_ifd.jpg": "ready",
    "bomb_17000x17000.avif": "unsupported_format",
    "bomb_4gpx.gif": "too_many_pixels",
    "bomb_65535x65535.jpg": "too_many_pixels",
    "broken_exif_dpi_nikon.jpg": "ready",
    "crash_fuzzed.tif": "unsupported_format",
    "empty.jpg": "truncated",
    "empty_gps_ifd_xiaomi.jpg": "ready",
    "gps_ifd_typeerror.jpg": "ready",
    "huffman_overflow_fuzzed.jpg": "corrupt",
    "invalid_dimensions.jpg": "corrupt",
    "invalid_exif.jpg": "ready",
    "jpeg_gps_with_png_extension.png": "ready",
    "missing_sof.jpg": "truncated",
    "oom_fuzzed.tif": "unsupported_format",
    "png_bad_ihdr_crc.png": "corrupt",
    "png_missing_idat.png": "corrupt",
    "png_text_chunk_bomb.png": "too_large",
    "png_with_jpg_extension.jpg": "ready",
    "truncated.gif": "truncated",
    "truncated.jpg": "truncated",
    "truncated.png": "truncated",
    "truncated_exif.jpg": "ready",
    "truncated_photo.jpg": "truncated",
    "truncated_pixel6_ultrahdr_gps.jpg": "truncated",
    "zero_width.gif": "corrupt",
}


def _outcome(data: bytes) -> str:
    try:
        decode(data, Limits(), need=(1080, 150))
    except errors.ImageRejected as exc:
        assert "\n" not in str(exc) and str(exc)
        return exc.code
    return "ready"


def test_every_hostile_fixture_is_listed() -> None:
    assert sorted(p.name for p in (PHOTOS / "hostile").iterdir()) == sorted(HOSTILE)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_handled_quickly_as_its_note_implies(name: str) -> None:
    data = (PHOTOS / "hostile" / name).read_bytes()
    started = time.process_time()
    assert _outcome(data) == HOSTILE[name]
    # A bomb must be refused from its header, not after decoding gigapixels; a generous bound
    # that a decode of the declared size (4 Gpx) could never meet.
    assert time.process_time() - started < 2.0


def test_corpus_hostile_folder_has_no_file_the_table_misses() -> None:
    assert sorted(p.name for p in CORPUS.glob("hostile/*")) == sorted(HOSTILE)


@pytest.mark.parametrize(("head", "family"), [
    (b"\xff\xd8\xff\xe0", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF89a", "GIF"),
    (b"GIF87a", "GIF"), (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "WEBP"),
])
def test_sniff_knows_the_allowed_containers(head: bytes, family: str) -> None:
    assert sniff(head + b"\x00" * 16) == family


@pytest.mark.parametrize("head", [
    b"%!PS-Adobe-3.0 EPSF-3.0", b"<svg xmlns=", b"<?xml version", b"%PDF-1.7", b"8BPS\x00\x01",
    b"SIMPLE  =                    T", b"II*\x00", b"MM\x00*", b"\x00\x00\x00\x1cftypheic",
    b"\x00\x00\x00\x1cftypavif", b"BM6\x00", b"RIFF\x10\x00\x00\x00WAVEfmt ",
])
def test_sniff_refuses_everything_else_whatever_the_name(head: bytes) -> None:
    with pytest.raises(errors.UnsupportedFormat):
        sniff(head + b"\x00" * 32)


@pytest.mark.parametrize("head", [b"", b"\xff", b"\xff\xd8", b"\x89PN", b"GIF8"])
def test_a_cut_signature_is_truncated(head: bytes) -> None:
    with pytest.raises(errors.Truncated):
        sniff(head)


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_pixel_limit_is_checked_before_decoding() -> None:
    data = _png(100, 100)
    assert decode(data, Limits(max_pixels=10_000)).image.size == (100, 100)
    with pytest.raises(errors.TooManyPixels):
        decode(data, Limits(max_pixels=9_999))


def test_byte_limit() -> None:
    data = _png(10, 10)
    with pytest.raises(errors.TooLarge):
        decode(data, Limits(max_bytes=len(data) - 1))


def test_frame_limits_count_frames_and_frames_times_pixels() -> None:
    data = (PHOTOS / "formats" / "animated.gif").read_bytes()  # 31 frames of 320x240
    assert decode(data, Limits(max_frames=31)).source.frames == 31
    with pytest.raises(errors.TooManyFrames):
        decode(data, Limits(max_frames=30))
    with pytest.raises(errors.TooManyFrames):
        decode(data, Limits(max_pixels=31 * 320 * 240 - 1))


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        Limits(max_pixels=0)


def test_jpeg_is_decoded_at_the_smallest_dct_scale_that_covers_the_need() -> None:
    data = (PHOTOS / "orientation" / "landscape_1.jpg").read_bytes()  # 1800x1200
    assert decode(data, Limits(), need=(400, 150)).image.size == (450, 300)
    assert decode(data, Limits(), need=(1080, 150)).image.size == (1800, 1200)
    assert decode(data, Limits(), need=(0, 0)).image.size == (1800, 1200)


def test_draft_request_follows_orientation() -> None:
    # Stored 1200x1800 with orientation 6: upright it is 1800x1200.
    data = (PHOTOS / "orientation" / "landscape_6.jpg").read_bytes()
    decoded = decode(data, Limits(), need=(400, 150))
    assert decoded.image.size == (450, 300)
    assert (decoded.source.width, decoded.source.height) == (1200, 1800)
    assert decoded.source.orientation == 6


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_invalid_orientation_is_treated_as_upright(value: int) -> None:
    image = Image.new("RGB", (4, 2))
    exif = image.getexif()
    exif[0x0112] = value
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(buffer.getvalue())) as reopened:
        assert read_orientation(reopened) == 1
