"""Run a compiled look as Pillow's own C passes over the pixels.

:mod:`filters.compile` evaluates a look exactly, in numpy, as the browser's arithmetic says; this
module turns that evaluation into the fewest compiled passes (the exact evaluation stays the
reference the tests compare them with):

* A look that is a per-channel table and nothing else is one ``Image.point`` pass (exact).
* Any other look without a gradient is a function of the pixel's colour alone: one
  ``Color3DLUT`` pass, its table filled by the exact evaluation at every grid point. The grid
  has 52 points a side, one every 5 levels, so each point is a whole 8-bit level and exact
  (52 is the largest such size under Pillow's limit of 65); trilinear interpolation does the
  rest. The fidelity tests chose it: at 18 points (every 15 levels) clarendon and gingham miss
  the bound by several levels.
* A gradient look reads its state-keyed 8-bit table with numpy (one lookup a channel), then
  runs what follows the table (colour matrices and clamps, a piecewise-linear map) as one
  ``Color3DLUT`` of 33 points a side: at 17, lofi and mayfair miss the bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from filters.compile import BAND_PIXELS, Plan, floats, plan_for, tail
from filters.css import to_8bit
from filters.gradient import Gradient
from filters.looks import Recipe
from filters.nonseparable import paint_flat

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
LOOK_GRID = 52  # a whole look: every 5th level, exact at each point
TAIL_GRID = 33  # what follows a gradient look's table: piecewise linear


@dataclass(frozen=True)
class Passes:
    """A look for one picture size, as Pillow passes."""

    plan: Plan
    point: tuple[int, ...] | None  # a per-channel table, the whole look
    cube: ImageFilter.Color3DLUT | None  # the whole look, or what follows the state lookup
    table: U8 | None  # gradient looks: (3, states * 256), read at ``plan.states + level``


def passes_for(recipe: Recipe, width: int, height: int) -> Passes:
    """``recipe`` compiled to Pillow passes for ``width`` x ``height`` pictures (cached: a look
    without gradients once whatever the size, a gradient look per size)."""
    if any(isinstance(o.source, Gradient) for o in recipe.overlays):
        return _positional(recipe, width, height)
    return _colour(recipe)


@lru_cache(maxsize=8)  # 1.7 MB a cube (52^3 points); rebuilding one takes about 10 ms
def _colour(recipe: Recipe) -> Passes:
    plan = plan_for(recipe, 1, 1)
    if plan.flat_first is None and not plan.tail:
        return Passes(plan, tuple(int(v) for v in plan.table.ravel()), None, None)
    return Passes(plan, None, _cube(LOOK_GRID, lambda grid: floats(plan, _levels(grid))), None)


@lru_cache(maxsize=4)  # like plan_for: photos of one aspect ratio share one
def _positional(recipe: Recipe, width: int, height: int) -> Passes:
    plan = plan_for(recipe, width, height)
    table = plan.table if plan.table.dtype == np.uint8 else to_8bit(plan.table.astype(np.float32))
    cube = _cube(TAIL_GRID, lambda grid: tail(plan, [grid[..., c].copy() for c in range(3)])) \
        if plan.tail else None
    return Passes(plan, None, cube, np.ascontiguousarray(table, dtype=np.uint8))


def run(passes: Passes, image: Image.Image) -> Image.Image:
    """``image`` (RGB) under the look; a new image."""
    if passes.point is not None:
        return image.point(list(passes.point))
    if passes.table is None:
        assert passes.cube is not None
        return image.filter(passes.cube)
    looked = Image.fromarray(_lookup(passes, np.asarray(image)))
    return looked.filter(passes.cube) if passes.cube is not None else looked


def _lookup(passes: Passes, pixels: U8) -> U8:
    """The state-keyed table read at every pixel (gradient looks), in bands of rows so that
    the index planes stay small and in cache."""
    plan, table = passes.plan, passes.table
    assert plan.states is not None and table is not None
    out = np.empty(pixels.shape, dtype=np.uint8)
    rows = max(1, BAND_PIXELS // pixels.shape[1])
    index = np.empty((rows, pixels.shape[1]), dtype=np.int32)
    for top in range(0, pixels.shape[0], rows):
        band = slice(top, top + rows)
        layer = pixels[band]
        if plan.flat_first is not None:
            layer = paint_flat(layer, plan.flat_first)
        states, step = plan.states[band], index[:layer.shape[0]]
        for channel in range(3):
            np.add(states, layer[..., channel], out=step)
            out[band, :, channel] = np.take(table[channel], step)
    return out


def _cube(size: int, evaluate: Callable[[F32], list[F32]]) -> ImageFilter.Color3DLUT:
    """A Color3DLUT of ``size`` points a side, filled by ``evaluate`` at the grid's points
    (an (N, 1, 3) float column in [0, 1] in, three float planes in [0, 1] out)."""
    steps = np.linspace(0, 1, size, dtype=np.float32)
    b, g, r = np.meshgrid(steps, steps, steps, indexing="ij")  # red varies fastest
    grid = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=-1)[:, None, :]
    planes = evaluate(grid)
    table = np.stack([np.asarray(p, dtype=np.float32).ravel() for p in planes], axis=-1)
    return ImageFilter.Color3DLUT(size, table.ravel(), channels=3)


def _levels(grid: F32) -> U8:
    """Grid points as the 8-bit levels they are (the look's grid falls on whole levels)."""
    levels = grid * np.float32(255)
    if not np.allclose(levels, np.round(levels), atol=1e-3):
        raise ValueError("the grid's points must fall on whole 8-bit levels")
    return np.round(levels).astype(np.uint8)
