"""Process-wide set-up, done once by each entry point (CLI, worker), never at import."""

from __future__ import annotations

import warnings

from PIL import Image, ImageFile

from pipeline.settings import Limits


def configure(limits: Limits) -> None:
    """Set Pillow's process-wide knobs to agree with ``limits``.

    photopipe checks the limits itself before decoding; Pillow's own decompression-bomb check is
    kept as a second line at the same pixel limit, and truncated files must raise rather than
    decode half a picture.
    """
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
