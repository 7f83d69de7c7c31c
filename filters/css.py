"""CSS filter functions (W3C Filter Effects Module Level 1, section 13), on sRGB values in [0, 1].

Each function returns a :class:`Step`: either a per-channel affine map (``brightness``,
``contrast``) or a 3x3 colour matrix (``saturate``, ``sepia``, ``grayscale``, ``hue-rotate``).
:func:`run_chain` applies steps left to right and clamps to [0, 1] after each one, as browsers do
(leaving the clamp out gives errors of up to 46 levels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Step:
    """One filter function: ``out = clamp(matrix @ c * scale + offset)``, per pixel.

    ``matrix`` is None for per-channel functions (``out = clamp(c * scale + offset)``).
    """

    name: str
    scale: float = 1.0
    offset: float = 0.0
    matrix: tuple[tuple[float, ...], ...] | None = None

    @property
    def per_channel(self) -> bool:
        return self.matrix is None

    def __call__(self, image: F32) -> F32:
        """Apply this function to a float (..., 3) image and clamp to [0, 1]."""
        if self.matrix is None:
            out = image * np.float32(self.scale) + np.float32(self.offset)
        else:
            out = image @ np.asarray(self.matrix, dtype=np.float32).T
        return np.clip(out, 0.0, 1.0, out=out)


def brightness(amount: float) -> Step:
    """``brightness(k)``: the transfer function ``C' = C * k`` (feFuncX type="linear")."""
    _non_negative("brightness", amount)
    return Step(f"brightness({amount:g})", scale=amount)


def contrast(amount: float) -> Step:
    """``contrast(k)``: ``C' = (C - 0.5) * k + 0.5`` (slope k, intercept ``-(0.5 * k) + 0.5``)."""
    _non_negative("contrast", amount)
    return Step(f"contrast({amount:g})", scale=amount, offset=0.5 - 0.5 * amount)


def saturate(amount: float) -> Step:
    """``saturate(s)``: the feColorMatrix type="saturate" matrix::

        [.213+.787s  .715-.715s  .072-.072s]
        [.213-.213s  .715+.285s  .072-.072s]
        [.213-.213s  .715-.715s  .072+.928s]
    """
    _non_negative("saturate", amount)
    s = amount
    return Step(f"saturate({s:g})", matrix=(
        (0.213 + 0.787 * s, 0.715 - 0.715 * s, 0.072 - 0.072 * s),
        (0.213 - 0.213 * s, 0.715 + 0.285 * s, 0.072 - 0.072 * s),
        (0.213 - 0.213 * s, 0.715 - 0.715 * s, 0.072 + 0.928 * s)))


def sepia(amount: float) -> Step:
    """``sepia(a)``, with ``b = 1 - min(a, 1)``::

        [.393+.607b  .769-.769b  .189-.189b]
        [.349-.349b  .686+.314b  .168-.168b]
        [.272-.272b  .534-.534b  .131+.869b]
    """
    _non_negative("sepia", amount)
    b = 1.0 - min(amount, 1.0)
    return Step(f"sepia({amount:g})", matrix=(
        (0.393 + 0.607 * b, 0.769 - 0.769 * b, 0.189 - 0.189 * b),
        (0.349 - 0.349 * b, 0.686 + 0.314 * b, 0.168 - 0.168 * b),
        (0.272 - 0.272 * b, 0.534 - 0.534 * b, 0.131 + 0.869 * b)))


def grayscale(amount: float) -> Step:
    """``grayscale(a)``, with ``b = 1 - min(a, 1)``::

        [.2126+.7874b  .7152-.7152b  .0722-.0722b]
        [.2126-.2126b  .7152+.2848b  .0722-.0722b]
        [.2126-.2126b  .7152-.7152b  .0722+.9278b]
    """
    _non_negative("grayscale", amount)
    b = 1.0 - min(amount, 1.0)
    return Step(f"grayscale({amount:g})", matrix=(
        (0.2126 + 0.7874 * b, 0.7152 - 0.7152 * b, 0.0722 - 0.0722 * b),
        (0.2126 - 0.2126 * b, 0.7152 + 0.2848 * b, 0.0722 - 0.0722 * b),
        (0.2126 - 0.2126 * b, 0.7152 - 0.7152 * b, 0.0722 + 0.9278 * b)))


def hue_rotate(degrees: float) -> Step:
    """``hue-rotate(θ)``: the feColorMatrix type="hueRotate" matrix::

        [.213 .715 .072]          [ .787 -.715 -.072]          [-.213 -.715  .928]
        [.213 .715 .072] + cosθ * [-.213  .285 -.072] + sinθ * [ .143  .140 -.283]
        [.213 .715 .072]          [-.213 -.715  .928]          [-.787  .715  .072]
    """
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return Step(f"hue-rotate({degrees:g}deg)", matrix=(
        (0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715,
         0.072 - c * 0.072 + s * 0.928),
        (0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.140,
         0.072 - c * 0.072 - s * 0.283),
        (0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715,
         0.072 + c * 0.928 + s * 0.072)))


def run_chain(image: F32, chain: tuple[Step, ...]) -> F32:
    """Apply ``chain`` left to right with a clamp after every function (as browsers do)."""
    for step in chain:
        image = step(image)
    return image


def to_8bit(image: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.uint8]:
    """Round [0, 1] values to 8 bits once, as browsers do at the end (exact .5 rounds up)."""
    out: npt.NDArray[np.uint8] = np.clip(np.floor(image * 255 + 0.5), 0, 255).astype(np.uint8)
    return out


def _non_negative(name: str, amount: float) -> None:
    if amount < 0:
        raise ValueError(f"{name}() takes a non-negative amount, not {amount}")
