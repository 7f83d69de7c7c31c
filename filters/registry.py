"""The registry of looks: a plain mapping from name to function, looked up by :func:`get`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from PIL import Image

from filters.looks import RECIPES, Recipe
from filters.passes import passes_for, run

Look = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]


class UnknownFilter(ValueError):
    """A look name that is not in the registry."""


def _look(recipe: Recipe) -> Look:
    def look(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return np.array(apply_recipe(recipe, Image.fromarray(image)))

    return look


def apply_recipe(recipe: Recipe, image: Image.Image) -> Image.Image:
    """``image`` (RGB) under ``recipe``, as the passes compiled for its size."""
    return run(passes_for(recipe, image.width, image.height), image)


LOOKS: Mapping[str, Look] = MappingProxyType({name: _look(r) for name, r in RECIPES.items()})
_ALIASES: Mapping[str, str] = MappingProxyType({"1977": "_1977"})


def names() -> list[str]:
    """Every look's name, sorted."""
    return sorted(LOOKS)


def recipe(name: str) -> Recipe:
    """The recipe behind the look ``name``: what decides its output (the render spec hashes it).

    Raises:
        UnknownFilter: no such look.
    """
    get(name)
    return RECIPES[_ALIASES.get(name, name)]


def get(name: str) -> Look:
    """The look called ``name`` (``1977`` is accepted for ``_1977``).

    Raises:
        UnknownFilter: no such look; the message lists the names that exist.
    """
    try:
        return LOOKS[_ALIASES.get(name, name)]
    except KeyError:
        raise UnknownFilter(f"unknown filter {name!r}; choose one of: {', '.join(names())}") \
            from None
