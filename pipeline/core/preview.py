"""Previews of one picture under every look: a labelled contact sheet (the CLI's), and the
small square of each look a page shows in its strip (``serve``'s)."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

import filters
from pipeline.core.decode import decode
from pipeline.core.encode import encode
from pipeline.core.renditions import resize
from pipeline.settings import Encoding, Limits

LABEL_HEIGHT = 22
COLUMNS = 6


def looks() -> list[str]:
    """Every look, "normal" (none) first."""
    return ["normal", *(n for n in filters.names() if n != "normal")]


def square(data: bytes, limits: Limits, size: int) -> Image.Image:
    """The upload's centre square at ``size`` pixels, decoded safely (at the smallest DCT scale
    that covers it): what a look's preview is drawn from."""
    picture = decode(data, limits, need=(size, size)).image
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    return resize(picture.crop((left, top, left + side, top + side)), (size, size))


def look_preview(base: Image.Image, look: str) -> bytes:
    """JPEG bytes of ``base`` under ``look`` ("normal": as it is).

    Raises:
        ValueError: not a look.
    """
    shown = base if look == "normal" else filters.apply_image(base, look)
    return encode(shown, "jpg", Encoding(jpeg_quality=85))


def contact_sheet(data: bytes, limits: Limits, cell: int = 240) -> bytes:
    """JPEG bytes of a grid: the upload (decoded safely) under every look, each labelled.

    Raises:
        ImageRejected: the upload is not a picture photopipe will render.
    """
    picture = decode(data, limits, need=(cell, cell)).image
    scale = cell / max(picture.size)
    thumb = resize(picture, (max(1, round(picture.width * scale)),
                             max(1, round(picture.height * scale))))
    names = looks()
    rows = (len(names) + COLUMNS - 1) // COLUMNS
    sheet = Image.new("RGB", (COLUMNS * cell, rows * (cell + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=15)
    for index, name in enumerate(names):
        left = (index % COLUMNS) * cell
        top = (index // COLUMNS) * (cell + LABEL_HEIGHT)
        sheet.paste(filters.apply_image(thumb, name), (left, top))
        draw.text((left + 4, top + cell + 3), name, fill="black", font=font)
    return encode(sheet, "jpg", Encoding(jpeg_quality=90))
