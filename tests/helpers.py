"""Helpers shared by the tests: fixture paths and a byte-level metadata scanner."""

from __future__ import annotations

import csv
import io
import os
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"
PHOTOS = FIXTURES / "photos"
CORPUS = Path(os.environ.get("PHOTOPIPE_CORPUS",
                             Path(__file__).resolve().parents[2] / "shared" / "photos"))

# JPEG markers that may carry metadata: APP1 (EXIF, XMP), APP2 (ICC, MPF), APP13 (IPTC), COM.
_JPEG_METADATA = {0xE1: "APP1", 0xE2: "APP2", 0xED: "APP13", 0xFE: "COM"}
_WEBP_METADATA = {b"EXIF", b"XMP ", b"ICCP"}


def small_photo(path: Path, box: int) -> Image.Image:
    """A corpus photo as RGB, draft-decoded and scaled to fit ``box`` x ``box``."""
    with Image.open(path) as image:
        image.draft("RGB", (box, box))
        small = image.convert("RGB")
    small.thumbnail((box, box))
    return small


def manifest(root: Path) -> dict[str, dict[str, str]]:
    """MANIFEST.tsv of a photo folder, by path."""
    with (root / "MANIFEST.tsv").open(newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle, delimiter="\t")}


def jpeg_segments(data: bytes) -> list[int]:
    """Markers of every segment before the first scan of a JPEG."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    markers, pos = [], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"bad marker at {pos}")
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        pos += 2 + length
    return markers


def webp_chunks(data: bytes) -> list[bytes]:
    """FourCCs of every top-level chunk of a WebP file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        fourcc = data[pos:pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4:pos + 8])
        chunks.append(fourcc)
        pos += 8 + size + (size & 1)
    return chunks


def metadata_found(data: bytes) -> list[str]:
    """Every metadata container in an output file, by name (empty when clean)."""
    if data[:2] == b"\xff\xd8":
        found = [_JPEG_METADATA[m] for m in jpeg_segments(data) if m in _JPEG_METADATA]
        found += ["APPn"] * sum(1 for m in jpeg_segments(data)
                                if 0xE0 < m <= 0xEF and m not in _JPEG_METADATA)
        return found
    if data[:4] == b"RIFF":
        chunks = webp_chunks(data)
        found = [c.decode() for c in chunks if c in _WEBP_METADATA]
        if b"VP8X" in chunks:
            flags = data[data.index(b"VP8X") + 8]
            found += ["VP8X-flags"] if flags & 0b00101100 else []
        return found
    raise ValueError("neither JPEG nor WebP")


def pixels(data: bytes) -> npt.NDArray[np.float32]:
    """An encoded picture as a float (H, W, 3) array."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def thumb(data: bytes, size: tuple[int, int] = (48, 48)) -> npt.NDArray[np.float32]:
    """A small greyscale version of an encoded picture, for comparing content."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L").resize(size, Image.Resampling.BOX),
                          dtype=np.float32)
