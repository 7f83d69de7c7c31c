"""Instagram-style looks that render like CSSgram in a browser: numpy evaluates each recipe
exactly once per look, and one compiled pass runs it over the pixels (see :mod:`filters.passes`).

``apply(image, name, strength)`` (numpy arrays) and ``apply_image`` (Pillow images) are the
whole public surface, with ``names()``, ``get()`` and ``recipe()`` (what a look is made of,
for those who need to know when it changed).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from filters.registry import Look, UnknownFilter, apply_recipe, get, names, recipe

__all__ = ["Look", "UnknownFilter", "apply", "apply_image", "get", "names", "recipe"]

RGB8 = npt.NDArray[np.uint8]


def apply(image: RGB8, name: str, strength: float = 1.0) -> RGB8:
    """Return a new (H, W, 3) uint8 array: ``image`` under the look ``name``.

    Args:
        image: an (H, W, 3) uint8 sRGB picture; it is never modified.
        name: one of :func:`names` (``1977`` is accepted for ``_1977``).
        strength: 0 gives the picture back, 1 the full look; in between the two are mixed,
            like Instagram's intensity slider.

    Raises:
        UnknownFilter: ``name`` is not a look; the message lists those that are.
        ValueError: ``image`` is not (H, W, 3) uint8, or ``strength`` is outside [0, 1].
    """
    get(name)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {image.shape} {image.dtype}")
    return np.array(apply_image(Image.fromarray(image), name, strength))


def apply_image(image: Image.Image, name: str, strength: float = 1.0) -> Image.Image:
    """:func:`apply` for a Pillow image in mode RGB; returns a new image.

    Raises:
        UnknownFilter: ``name`` is not a look.
        ValueError: ``image`` is not RGB, or ``strength`` is outside [0, 1].
    """
    look = recipe(name)
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, not {strength}")
    if strength <= 0.0:
        return image.copy()
    full = apply_recipe(look, image)
    return full if strength >= 1.0 else Image.blend(image, full, strength)
