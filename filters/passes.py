"""Run a compiled look in the fewest compiled passes over the pixels.

:mod:`filters.compile` evaluates a look exactly, in numpy, as the browser's arithmetic says; this
module picks how that evaluation runs over a picture (the exact evaluation stays the reference
the tests compare with):

* A look that is a per-channel table and nothing else is one ``Image.point`` pass (exact).
* A look that starts with a flat hue or colour overlay (maven, willow) is a function of the
  pixel's colour alone: one ``Color3DLUT`` pass, its table filled by the exact evaluation at
  every grid point. The grid has 52 points a side, one every 5 levels, so each point is a whole
  8-bit level and exact (52 is the largest such size under Pillow's limit of 65); trilinear
  interpolation does the rest. The fidelity tests chose it: at 18 points (every 15 levels)
  clarendon and gingham miss the bound by several levels.
* Every other look, with or without gradients, is one pass of the fused kernel
  (:mod:`filters.fused`): the plan's table and tail, equal to the exact evaluation bit for bit.
  Pillow's passes could not get the gradient looks under a fifth of pilgram's time (a numpy
  lookup of the position-keyed table, then a cube: 10-15 ms at 1080x1350), nor inkwell (one
  cube, 4 ms, against pilgram's 12); the kernel takes 1.3-2.5 times an ``Image.point``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from filters import fused
from filters.compile import Plan, floats, plan_for
from filters.gradient import Gradient
from filters.looks import Recipe

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
LOOK_GRID = 52  # a whole look: every 5th level, exact at each point


@dataclass(frozen=True)
class Passes:
    """A look for one picture size: exactly one of its three ways of running is set."""

    plan: Plan
    point: tuple[int, ...] | None  # a per-channel table, the whole look
    cube: ImageFilter.Color3DLUT | None  # the whole look (a flat hue or colour overlay first)
    kernel: fused.Kernel | None  # the plan, for the fused kernel


def passes_for(recipe: Recipe, width: int, height: int) -> Passes:
    """``recipe`` compiled for ``width`` x ``height`` pictures (cached: a look without gradients
    once whatever the size, a gradient look per size)."""
    if any(isinstance(o.source, Gradient) for o in recipe.overlays):
        return _positional(recipe, width, height)
    return _colour(recipe)


@lru_cache(maxsize=8)  # a cube is 1.7 MB (52^3 points); rebuilding one takes about 10 ms
def _colour(recipe: Recipe) -> Passes:
    plan = plan_for(recipe, 1, 1)
    if plan.flat_first is None and not plan.tail:
        return Passes(plan, tuple(int(v) for v in plan.table.ravel()), None, None)
    if plan.flat_first is not None:
        cube = _cube(LOOK_GRID, lambda grid: floats(plan, _levels(grid)))
        return Passes(plan, None, cube, None)
    return Passes(plan, None, None, fused.kernel_for(plan))


@lru_cache(maxsize=4)  # like plan_for: photos of one aspect ratio share one
def _positional(recipe: Recipe, width: int, height: int) -> Passes:
    plan = plan_for(recipe, width, height)
    return Passes(plan, None, None, fused.kernel_for(plan))


def run(passes: Passes, image: Image.Image) -> Image.Image:
    """``image`` (RGB) under the look; a new image."""
    if passes.point is not None:
        return image.point(list(passes.point))
    if passes.cube is not None:
        return image.filter(passes.cube)
    assert passes.kernel is not None
    return fused.run(passes.kernel, image)


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
