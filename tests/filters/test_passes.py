"""The looks as compiled passes: within the browser bound of the exact evaluation on photos the
repo has never seen, each look run the way it should be, and compiled once where the picture's
size does not matter."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import filters
from filters.compile import execute, plan_for
from filters.looks import RECIPES
from filters.passes import LOOK_GRID, _cube, _levels, passes_for, run
from tests.helpers import CORPUS, small_photo

NAMES = [n for n in filters.names() if n != "normal"]
UNSEEN = sorted((CORPUS / "real").glob("*.jpg"))[::5]  # makers the references never used


@pytest.fixture(scope="module")
def unseen() -> list[Image.Image]:
    assert len(UNSEEN) >= 4
    return [small_photo(path, 360 + 40 * i) for i, path in enumerate(UNSEEN)]


@pytest.mark.parametrize("name", NAMES)
def test_passes_stay_within_the_browser_bound_of_the_exact_look(
        name: str, unseen: list[Image.Image]) -> None:
    errors = []
    for image in unseen:
        recipe = RECIPES[name]
        exact = execute(plan_for(recipe, image.width, image.height), np.asarray(image))
        fast = np.asarray(run(passes_for(recipe, image.width, image.height), image))
        errors.append(np.abs(fast.astype(np.int16) - exact.astype(np.int16)).ravel())
    error = np.concatenate(errors)
    assert error.mean() <= 0.5, f"MAE {error.mean():.3f}"
    assert np.percentile(error, 99) <= 2
    assert error.max() <= 4


@pytest.mark.parametrize("name", ["kelvin", "lark"])
def test_a_table_look_is_one_point_pass_equal_to_the_exact_look(
        name: str, unseen: list[Image.Image]) -> None:
    image = unseen[0]
    passes = passes_for(RECIPES[name], image.width, image.height)
    assert passes.point is not None and passes.cube is None and passes.kernel is None
    exact = execute(plan_for(RECIPES[name], image.width, image.height), np.asarray(image))
    assert np.array_equal(np.asarray(run(passes, image)), exact)


def test_each_look_runs_as_a_table_a_cube_or_the_fused_kernel() -> None:
    ways = {name: [w for w, part in zip(("point", "cube", "kernel"), (p.point, p.cube, p.kernel),
                                         strict=True) if part is not None]
            for name, p in ((n, passes_for(RECIPES[n], 64, 48)) for n in NAMES)}
    assert {n for n, w in ways.items() if w == ["point"]} == {"kelvin", "lark"}
    assert {n for n, w in ways.items() if w == ["cube"]} == {"maven", "willow"}  # flat hue/colour
    assert {n for n, w in ways.items() if w == ["kernel"]} == set(NAMES) - {
        "kelvin", "lark", "maven", "willow"}


def test_a_colour_look_compiles_once_and_a_gradient_look_per_size() -> None:
    colour, gradient = RECIPES["clarendon"], RECIPES["earlybird"]
    assert passes_for(colour, 640, 480) is passes_for(colour, 480, 640)
    assert passes_for(colour, 640, 480).kernel is not None
    assert passes_for(gradient, 640, 480) is not passes_for(gradient, 480, 640)
    shapes = [passes_for(gradient, w, h).plan.states.shape  # type: ignore[union-attr]
              for w, h in ((640, 480), (480, 640))]
    assert shapes == [(480, 640), (640, 480)]


def test_the_colour_cube_samples_the_look_at_whole_levels_in_red_fastest_order() -> None:
    seen: list[np.ndarray] = []

    def evaluate(grid: np.ndarray) -> list[np.ndarray]:
        levels = _levels(grid)
        seen.append(levels)
        return [levels[..., c].astype(np.float32) / 255 for c in (2, 1, 0)]  # swap R and B

    cube = _cube(LOOK_GRID, evaluate)
    assert seen[0][1, 0].tolist() == [5, 0, 0] and seen[0][LOOK_GRID, 0].tolist() == [0, 5, 0]
    image = Image.fromarray(np.array([[[200, 30, 90], [5, 250, 0]]], dtype=np.uint8))
    assert np.asarray(image.filter(cube)).tolist() == [[[90, 30, 200], [0, 250, 5]]]
    with pytest.raises(ValueError, match="whole 8-bit levels"):
        _cube(33, lambda grid: [_levels(grid)[..., c].astype(np.float32) for c in range(3)])
