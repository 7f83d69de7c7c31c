"""The benchmarks' uploads: a deterministic 12 MP phone photo with EXIF orientation 6 and GPS,
and Instagram's 2011 uploads (612x612 JPEGs the app cropped, filtered and encoded on the phone)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import piexif
from PIL import Image, ImageOps

WIDTH, HEIGHT = 4032, 3024  # as stored; orientation 6 makes it 3024x4032 upright
SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "photos" / "real"


def phone_photo(seed: int = 2011) -> bytes:
    """JPEG q92 4:2:0: a smooth sky gradient, textured ground, hard-edged buildings, grain."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :]
    sky = np.stack(np.broadcast_arrays(90 + 80 * y + 0 * x, 140 + 70 * y, 230 - 40 * y), -1)
    ground_rows = slice(int(HEIGHT * 0.62), HEIGHT)
    texture = rng.normal(0, 1, (HEIGHT // 8, WIDTH // 8)).astype(np.float32)
    texture = np.kron(texture, np.ones((8, 8), np.float32))[:HEIGHT, :WIDTH]
    ground = np.stack([70 + 25 * texture, 110 + 30 * texture, 50 + 15 * texture], -1)
    image = sky
    image[ground_rows] = ground[ground_rows]
    for left, width, top, shade in ((300, 700, 900, 60), (1200, 500, 1300, 200),
                                    (2100, 900, 700, 120), (3300, 450, 1500, 240)):
        image[top:int(HEIGHT * 0.62), left:left + width] = (shade, shade * 0.9, shade * 0.8)
    image += rng.normal(0, 4, image.shape).astype(np.float32)  # sensor grain
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=92, subsampling=2, exif=_exif())
    return buffer.getvalue()


def instagram_2011(path: Path) -> bytes:
    """What Instagram's 2011 app uploaded of a camera photo: upright, cropped to its centre
    square, 612x612, JPEG q90 4:2:0 with no metadata."""
    with Image.open(path) as opened:
        upright = ImageOps.exif_transpose(opened).convert("RGB")
    square = ImageOps.fit(upright, (612, 612), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    square.save(buffer, "JPEG", quality=90, subsampling=2)
    return buffer.getvalue()


def _exif() -> bytes:
    gps = {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude:
           ((37, 1), (46, 1), (2964, 100)), piexif.GPSIFD.GPSLongitudeRef: b"W",
           piexif.GPSIFD.GPSLongitude: ((122, 1), (25, 1), (984, 100))}
    zeroth = {piexif.ImageIFD.Make: b"photopipe", piexif.ImageIFD.Model: b"bench phone",
              piexif.ImageIFD.Orientation: 6}
    dumped: bytes = piexif.dump({"0th": zeroth, "GPS": gps})
    return dumped


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corpus() -> list[Path]:
    """Every JPEG in ../shared/photos/real, when the corpus is there."""
    return sorted(SHARED_REAL.glob("*.jpg")) if SHARED_REAL.is_dir() else []
