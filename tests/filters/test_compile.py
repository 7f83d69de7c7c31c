"""Compiled looks compute what the reference recipes compute, on any picture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from filters import css
from filters.compile import Clamped, execute, plan_for
from filters.looks import RECIPES
from filters.render import run
from tests.helpers import PHOTOS


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    with Image.open(PHOTOS / "real" / "fujifilm_finepix_s2pro_gps.jpg") as image:
        return np.asarray(image.convert("RGB").resize((301, 187)))  # odd size, not a reference


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_compiled_look_equals_the_reference_recipe(name: str, photo: np.ndarray) -> None:
    recipe = RECIPES[name]
    compiled = execute(plan_for(recipe, photo.shape[1], photo.shape[0]), photo)
    # Float rounding differs in the last place between the two paths: one level at most.
    difference = np.abs(compiled.astype(np.int16) - run(recipe, photo).astype(np.int16))
    assert difference.max() <= 1 and difference.mean() < 0.01


def test_every_colour_goes_through_the_compiled_tables() -> None:
    levels = np.arange(256, dtype=np.uint8)
    cube = np.stack(np.meshgrid(levels[::5], levels[::3], levels[::7], indexing="ij"), -1)
    image = np.ascontiguousarray(cube.reshape(52, -1, 3))
    for recipe in RECIPES.values():
        compiled = execute(plan_for(recipe, image.shape[1], image.shape[0]), image)
        assert np.abs(compiled.astype(np.int16) - run(recipe, image).astype(np.int16)).max() <= 1


@pytest.mark.parametrize("steps", [
    (css.contrast(1.5), css.brightness(0.8)),
    (css.brightness(1.2), css.contrast(0.9), css.brightness(1.05)),
    (css.contrast(0.0), css.contrast(3.0)),
])
def test_clamped_maps_compose_like_the_chain(steps: tuple[css.Step, ...]) -> None:
    y = np.linspace(-0.5, 1.5, 401, dtype=np.float64)[:, None].repeat(3, axis=1)
    fused = Clamped()
    for step in steps:
        fused = fused.then(step)
    expected = np.clip(y, 0, 1)
    for step in steps:
        expected = np.clip(expected * step.scale + step.offset, 0, 1)
    np.testing.assert_allclose(fused(np.clip(y, 0, 1)), expected, atol=1e-12)


def test_gradient_plans_are_cached_per_size() -> None:
    recipe = RECIPES["brooklyn"]
    assert plan_for(recipe, 64, 48) is plan_for(recipe, 64, 48)
    assert plan_for(recipe, 64, 48) is not plan_for(recipe, 48, 64)
