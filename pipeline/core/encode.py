"""Encode renditions as JPEG or WebP carrying no metadata at all.

The pictures handed in have an empty ``info`` (see :mod:`pipeline.core.colour`), and the encoders
are called with explicit empty metadata as well, so no EXIF (GPS, serial numbers, MakerNote, the
embedded thumbnail), XMP, IPTC, comment or ICC profile can reach an output.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from types import MappingProxyType

import pyjpegli
from PIL import Image

from pipeline.settings import Encoding

CONTENT_TYPES: Mapping[str, str] = MappingProxyType({"jpg": "image/jpeg", "webp": "image/webp"})


def encode(image: Image.Image, fmt: str, encoding: Encoding) -> bytes:
    """Encode an RGB ``image`` as ``fmt`` ("jpg" or "webp"), JPEG with ``encoding``'s encoder.

    Raises:
        ValueError: ``fmt`` is not an output format.
    """
    buffer = io.BytesIO()
    if fmt == "jpg" and encoding.jpeg_encoder == "jpegli":
        # Packed RGB in, a JPEG of no markers but its tables and frame out (no JFIF, EXIF, ICC).
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return bytes(pyjpegli.encode(rgb.tobytes(), rgb.width, rgb.height, encoding.quality))
    if fmt == "jpg":
        image.save(buffer, "JPEG", quality=encoding.quality, subsampling=encoding.subsampling,
                   optimize=encoding.optimize, progressive=encoding.progressive, exif=b"",
                   icc_profile=None)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=encoding.webp_quality, method=encoding.webp_method,
                   exif=b"", icc_profile=None, xmp=b"")
    else:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {sorted(CONTENT_TYPES)}")
    return buffer.getvalue()
