"""Instagram-style looks as numpy kernels that render like CSSgram in a browser.

``apply(image, name, strength)`` is the whole public surface, with ``names()``, ``get()`` and
``recipe()`` (what a look is made of, for those who need to know when it changed).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from filters.registry import Look, UnknownFilter, get, names, recipe

__all__ = ["Look", "UnknownFilter", "apply", "get", "names", "recipe"]

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
    look = get(name)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {image.shape} {image.dtype}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, not {strength}")
    full = look(image)
    if strength >= 1.0:
        return full
    return _mix(image, full, strength)


def _mix(original: RGB8, full: RGB8, strength: float) -> RGB8:
    """``(1 - strength) * original + strength * full``, rounded, in integer arithmetic."""
    weight = round(strength * 256)
    mixed = original.astype(np.int32) * (256 - weight) + full.astype(np.int32) * weight
    return ((mixed + 128) >> 8).astype(np.uint8)
