"""Run a recipe over an 8-bit picture, as a browser renders the look."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from filters.css import run_chain, to_8bit
from filters.layers import paint
from filters.looks import Recipe

U8 = npt.NDArray[np.uint8]


def run(recipe: Recipe, image: U8) -> U8:
    """Overlays into an 8-bit layer, then the filter chain in float, rounded once."""
    layer = image
    for overlay in recipe.overlays:
        layer = paint(layer, overlay)
    if not recipe.chain:
        return layer.copy() if layer is image else layer
    return to_8bit(run_chain(layer.astype(np.float32) / np.float32(255), recipe.chain))
