"""Safe decoding of hostile uploads.

The order matters: the container is identified from its magic bytes (never its name), the byte,
pixel and frame limits are checked against the header before a single pixel is decoded, JPEGs are
decoded at the smallest DCT scale that still covers what the ladder needs, the pixels are
resampled to the size the caller asks for, and only then converted through the source's ICC
profile to 8-bit sRGB (see :mod:`pipeline.core.colour`) and oriented, so both steps touch the
smaller picture.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image

from pipeline import errors
from pipeline.core import memory
from pipeline.core.colour import to_srgb
from pipeline.core.renditions import resize
from pipeline.records import SourceInfo
from pipeline.settings import Limits

# Containers photopipe decodes, by the Pillow plug-ins allowed to read each one. MPO (multi-picture
# JPEG: stereo pairs, Ultra HDR gain maps) is a JPEG container whose first picture is the photo.
_SIGNATURES: dict[bytes, str] = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
}
_PLUGINS: dict[str, tuple[str, ...]] = {
    "JPEG": ("JPEG", "MPO"),
    "PNG": ("PNG",),
    "GIF": ("GIF",),
    "WEBP": ("WEBP",),
}
_SNIFF_BYTES = 12

# EXIF orientation -> the transpose that makes the picture upright (EXIF 2.32, tag 0x0112).
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Decoded:
    """An upright 8-bit sRGB picture with no metadata attached, and what its source declared."""

    image: Image.Image
    source: SourceInfo


def sniff(data: bytes) -> str:
    """Return the container family of ``data`` from its magic bytes.

    Raises:
        Truncated: ``data`` is empty or a strict prefix of a known signature.
        UnsupportedFormat: anything else that is not on the allow-list.
    """
    for signature, family in _SIGNATURES.items():
        if data.startswith(signature):
            return family
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if len(data) < _SNIFF_BYTES and any(sig.startswith(data) for sig in _SIGNATURES):
        raise errors.Truncated(f"the upload ends after {len(data)} bytes")
    raise errors.UnsupportedFormat("not a JPEG, PNG, GIF or WebP file")


def sniff_start(data: bytes) -> None:
    """Raise UnsupportedFormat unless ``data`` is, or may still become, the start of a file on
    the allow-list (an upload arriving in chunks of fewer bytes than a signature has)."""
    if len(data) >= _SNIFF_BYTES:
        sniff(data)
        return
    riff = b"RIFF\0\0\0\0WEBP"  # any length in bytes 4 to 7
    if any(sig.startswith(data[:len(sig)]) for sig in _SIGNATURES) or \
            all(r == d or 4 <= i < 8 for i, (r, d) in enumerate(zip(riff, data[:12],
                                                                     strict=False))):
        return
    raise errors.UnsupportedFormat("not a JPEG, PNG, GIF or WebP file")


def decode(data: bytes, limits: Limits, need: tuple[int, int] = (0, 0),
           fit: Callable[[int, int], tuple[int, int]] | None = None) -> Decoded:
    """Decode the first picture in ``data`` safely.

    Args:
        data: the upload, untrusted.
        limits: what the upload may declare.
        need: the smallest upright (width, height) the caller will resample from; JPEGs are
            decoded at the smallest DCT scale that still covers it. (0, 0) decodes at full size.
        fit: given the upright size of the decoded pixels, the upright size to resample them to.
            Resampling happens before the profile transform and the orientation, so both only
            touch the smaller picture. None keeps the decoded size.

    Raises:
        ImageRejected: one of its subclasses, with a one-line message.
        OutOfMemory: the decode needs more memory than this process can get (said before
            decoding when the header shows it, or when a decoder's failure is explained by it).
    """
    if len(data) > limits.max_bytes:
        raise errors.TooLarge(f"{len(data)} bytes is over the limit of {limits.max_bytes}")
    family = sniff(data)
    available = memory.headroom()  # before opening: libwebp allocates its canvases there
    with _decoder(family, available, _open_need(data, family)):
        image = Image.open(io.BytesIO(data), formats=_PLUGINS[family])
        frames = _check_declared(image, limits)
    orientation = read_orientation(image)
    declared = image.size
    with _decoder(family):
        if image.format in ("JPEG", "MPO") and min(need) > 0:
            image.draft(image.mode, _swap_axes(need, orientation))
    needed = decode_need(image, declared)
    _check_memory(family, needed, available)
    with _decoder(family, available, needed):
        image.load()
    source = SourceInfo(image.format or family, *declared, len(data), frames, orientation)
    srgb = to_srgb(image, None if fit is None else _resizer(fit, orientation))
    del image  # the decoded pixels, often the largest picture of all: gone before the transpose
    return Decoded(orient(srgb, orientation), source)


def _resizer(fit: Callable[[int, int], tuple[int, int]],
             orientation: int) -> Callable[[Image.Image], Image.Image]:
    """Resample a picture in its stored orientation to the upright size ``fit`` asks for."""
    def resample(image: Image.Image) -> Image.Image:
        width, height = _swap_axes(image.size, orientation)
        return resize(image, _swap_axes(fit(width, height), orientation))

    return resample


def read_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) of ``image``; 1 when absent, invalid or unreadable.

    Broken EXIF is common in real uploads and must never reject an otherwise good picture.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = image.getexif().get(_EXIF_ORIENTATION)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient(image: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation to pixels, so the picture is upright with orientation 1."""
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _check_declared(image: Image.Image, limits: Limits) -> int:
    """Check the header's size and frame count against ``limits``; return the frame count."""
    width, height = image.size
    if width < 1 or height < 1:
        raise errors.Corrupt(f"declared size {width}x{height} is empty")
    if width * height > limits.max_pixels:
        raise errors.TooManyPixels(
            f"{width}x{height} is over the limit of {limits.max_pixels} pixels")
    frames = int(getattr(image, "n_frames", 1))
    if frames > limits.max_frames or frames * width * height > limits.max_pixels:
        raise errors.TooManyFrames(
            f"{frames} frames of {width}x{height} is over the limits "
            f"({limits.max_frames} frames, {limits.max_pixels} pixels in all)")
    return frames


def _swap_axes(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """A size in the other frame (stored <-> upright): orientations 5-8 swap the axes."""
    width, height = max(size[0], 1), max(size[1], 1)
    return (height, width) if orientation >= 5 else (width, height)


# What Pillow's plug-ins raise on hostile bytes. Nothing else is a verdict on the image: a
# MemoryError, a time limit (Celery raises it inside whatever runs) or a bug of ours propagates.
DECODER_ERRORS: tuple[type[Exception], ...] = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, KeyError,
    TypeError, OverflowError, ZeroDivisionError, Image.DecompressionBombError)


@contextmanager
def _decoder(family: str, available: int | None = None, needed: int = 0) -> Iterator[None]:
    """Turn what a decoder raises on hostile input into an :class:`ImageRejected`.

    Only the calls that parse the upload's bytes run inside: opening, counting frames, drafting
    and loading. Decoders fail on crafted files with many exception types (OSError, SyntaxError,
    struct.error, EOFError, ValueError, IndexError...), listed in :data:`DECODER_ERRORS`. Some
    report a failed allocation the same way: a failure of a step that needs ``needed`` bytes
    is :class:`~pipeline.errors.OutOfMemory`, not a verdict, when memory explains it (the
    process had less than :data:`MEMORY_DOUBT` times that ``available`` before decoding).
    """
    try:
        yield
    except DECODER_ERRORS as exc:
        if needed:
            _check_memory(family, needed * MEMORY_DOUBT, available, cause=exc)
        raise _rejection(family, exc) from exc


# A decoder's failure is read as memory's when its estimated need, this many times over, is more
# than the process could still get: the estimate leaves out the decoders' own small buffers.
MEMORY_DOUBT = 2


def decode_need(image: Image.Image, declared: tuple[int, int]) -> int:
    """Bytes that decoding ``image`` (opened, drafted) and turning it into RGB will hold at once.

    The decoded picture (Pillow keeps 4 bytes a pixel for every mode wider than one byte), the
    conversions :func:`~pipeline.core.colour.to_srgb` makes at full size before it resizes (one
    RGB copy; three RGBA ones to flatten alpha), and the decoders' own full-size buffers: a
    progressive JPEG's coefficients (2 bytes a sample at the declared size, whatever the DCT
    scale), libwebp's output and canvases (three RGBA frames).
    """
    width, height = image.size
    pixels = width * height
    decoded = pixels * (1 if image.mode in ("1", "L", "P") else 4)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        copies = 3 * pixels * 4
    else:
        copies = 0 if image.mode == "RGB" else pixels * 4
    return decoded + copies + _decoder_buffers(image, declared[0] * declared[1])


def _decoder_buffers(image: Image.Image, declared_pixels: int) -> int:
    if image.format == "WEBP":
        return 3 * declared_pixels * 4
    if image.format in ("JPEG", "MPO") and image.info.get("progressive"):
        return declared_pixels * len(image.getbands()) * 2
    return 0


def _open_need(data: bytes, family: str) -> int:
    """What opening ``data`` allocates: only libwebp decodes at open (its canvases and the
    frame it hands over), sized from the WebP's own header."""
    if family != "WEBP":
        return 0
    width, height = webp_canvas(data)
    return 4 * width * height * 4


def webp_canvas(data: bytes) -> tuple[int, int]:
    """The canvas size a WebP's first chunk declares (VP8X, lossless VP8L or lossy VP8);
    (0, 0) when the header is too short or of another kind."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30],
                                                                             "little")
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30:
        return (int.from_bytes(data[26:28], "little") & 0x3FFF,
                int.from_bytes(data[28:30], "little") & 0x3FFF)
    return 0, 0


def _check_memory(family: str, needed: int, available: int | None,
                  cause: BaseException | None = None) -> None:
    """Raise OutOfMemory when ``needed`` bytes are more than the ``available`` ones."""
    if available is None or needed <= available:
        return
    what = "failed" if cause is not None else "was not tried"
    raise errors.OutOfMemory(
        f"decoding this {family} needs up to {needed >> 20} MB and this process could get "
        f"{available >> 20} MB: the decode {what}") from cause


def _rejection(family: str, exc: Exception) -> errors.ImageRejected:
    text = str(exc).lower()
    if isinstance(exc, Image.DecompressionBombError):
        return errors.TooManyPixels(f"the {family} header declares a decompression bomb")
    if "truncated" in text:
        return errors.Truncated(f"the {family} data ends before the picture does")
    if isinstance(exc, ValueError) and "too large" in text:
        return errors.TooLarge(f"a {family} chunk decompresses beyond the safe limit")
    return errors.Corrupt(f"the {family} data is corrupt ({type(exc).__name__})")
