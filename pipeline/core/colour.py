"""Bring any decoded picture to 8-bit RGB in sRGB, with nothing of its source's metadata.

Browsers assume sRGB for untagged pictures, so renditions are converted to sRGB through the
source's embedded ICC profile (Display P3 from phones, Adobe RGB, CMYK press profiles) and carry
no profile of their own. Transparent pictures are flattened onto white, since JPEG has no alpha
and the looks are defined over opaque pictures.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms

WHITE = (255, 255, 255)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
# ICC colour-space signatures the transform accepts, by the Pillow mode it is applied to.
_PROFILE_SPACE = {"RGB": "RGB ", "CMYK": "CMYK"}


def to_srgb(image: Image.Image,
            resize: Callable[[Image.Image], Image.Image] | None = None) -> Image.Image:
    """Return ``image`` as an 8-bit RGB sRGB picture whose ``info`` is empty.

    ``resize``, when given, runs after the mode conversion and before the (per-pixel) profile
    transform, so that transform only sees the resized picture, as thumbnailers do. ``image`` is
    consumed: its ``info`` may be cleared in place.
    """
    icc = image.info.get("icc_profile") or None
    resize = resize or (lambda picture: picture)
    if image.mode == "CMYK":
        out = resize(_apply_profile(image, icc) or image.convert("RGB"))
    else:
        rgb = resize(_flatten(_eight_bit(image)))
        out = _apply_profile(rgb, icc) or rgb
    out.info = {}
    return out


def _eight_bit(image: Image.Image) -> Image.Image:
    """Reduce 16-bit greyscale (PNG) to 8 bits, keeping a tRNS key as real alpha."""
    if image.mode not in _SIXTEEN_BIT_MODES:
        return image
    wide = np.asarray(image).astype(np.uint32)
    grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    key = image.info.get("transparency")
    if not isinstance(key, int):
        return Image.fromarray(grey)
    alpha = np.where(wide == key, 0, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([grey, alpha]))


def _flatten(image: Image.Image) -> Image.Image:
    """Composite anything with alpha (or a palette/tRNS transparency) onto white, as RGB."""
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode not in _ALPHA_MODES and "transparency" not in image.info:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*WHITE, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _apply_profile(image: Image.Image, icc: bytes | None) -> Image.Image | None:
    """Convert through the source profile to sRGB; None when there is nothing (safe) to do."""
    if icc is None or image.mode not in _PROFILE_SPACE:
        return None
    transform = _transform(icc, image.mode)
    return None if transform is None else ImageCms.applyTransform(image, transform)


@lru_cache(maxsize=32)
def _transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Build (once per distinct profile) the transform from ``icc`` to sRGB.

    Returns None for sRGB sources (no work needed), for a profile of another colour space than
    the pixels, and for a profile littleCMS cannot parse: a broken profile must not reject a
    picture whose pixels are fine.
    """
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if source.profile.xcolor_space != _PROFILE_SPACE[mode]:
            return None
        if "srgb" in ImageCms.getProfileDescription(source).lower():
            return None
        return ImageCms.buildTransform(source, _SRGB, mode, "RGB",
                                       ImageCms.Intent.PERCEPTUAL)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
