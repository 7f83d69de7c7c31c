"""The fused kernel (filters/_fused.c) against the exact evaluation: equal bit for bit, for every
look it runs, on real photos of sizes that end mid-block, on every 8-bit level, and on a picture
too large for one of Pillow's memory blocks; and it refuses what would make it read out of
bounds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import filters
from filters import _fused, fused
from filters.compile import execute, plan_for
from filters.looks import RECIPES
from filters.passes import passes_for
from tests.helpers import CORPUS, small_photo

KERNEL_LOOKS = [n for n in filters.names() if n != "normal"
                and passes_for(RECIPES[n], 8, 8).kernel is not None]
PHOTOS = sorted((CORPUS / "real").glob("*.jpg"))[1::6]


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    images = [small_photo(path, 301 + 34 * i) for i, path in enumerate(PHOTOS)]
    assert len(images) >= 3 and all((i.width * i.height) % 256 for i in images)  # a last block
    return images  # shorter than the others


def _kernel(name: str, image: Image.Image) -> Image.Image:
    passes = passes_for(RECIPES[name], image.width, image.height)
    assert passes.kernel is not None
    return fused.run(passes.kernel, image)


def _exact(name: str, image: Image.Image) -> np.ndarray:
    return execute(plan_for(RECIPES[name], image.width, image.height), np.asarray(image))


def test_the_kernel_runs_the_gradient_looks_and_the_colour_looks_with_matrices() -> None:
    assert {"lofi", "aden", "hudson", "toaster", "rise", "inkwell", "walden"} <= set(KERNEL_LOOKS)


@pytest.mark.parametrize("name", KERNEL_LOOKS)
def test_the_kernel_equals_the_exact_evaluation(name: str, photos: list[Image.Image]) -> None:
    for image in photos:
        before = image.tobytes()
        out = _kernel(name, image)
        assert out.mode == "RGB" and out.size == image.size
        assert np.array_equal(np.asarray(out), _exact(name, image)), name
        assert image.tobytes() == before


@pytest.mark.parametrize("name", ["inkwell", "walden", "moon", "_1977"])
def test_the_kernel_equals_the_exact_evaluation_at_every_level(name: str) -> None:
    levels = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(levels[::3], levels[::5], levels, indexing="ij")
    image = Image.fromarray(np.stack([r, g, b], -1).reshape(-1, 256, 3))
    assert np.array_equal(np.asarray(_kernel(name, image)), _exact(name, image))


def test_a_picture_in_several_memory_blocks_is_copied_into_one() -> None:
    size = (2400, 1800)  # 17 MB: Image.new stores it in more than one 16 MB block
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.paste((200, 40, 90), (100, 100, 900, 700))
    with pytest.raises(ValueError, match="multiple"):
        image.__arrow_c_array__()
    out = _kernel("clarendon", image)
    assert np.array_equal(np.asarray(out), _exact("clarendon", image))


def _parts(name: str, image: Image.Image) -> tuple[fused.Kernel, np.ndarray, object, object]:
    passes = passes_for(RECIPES[name], image.width, image.height)
    assert passes.kernel is not None and passes.kernel.table is not None
    return (passes.kernel, passes.kernel.table, image.__arrow_c_array__()[1],
            image.copy().__arrow_c_array__()[1])


def test_the_kernel_refuses_a_state_outside_its_table() -> None:
    image = Image.new("RGB", (40, 30), (9, 99, 199))
    kernel, table, src, dst = _parts("lofi", image)
    states = kernel.plan.states.copy()  # type: ignore[union-attr]
    is_float = table.dtype == np.float32
    _fused.apply(src, dst, 1200, table, is_float, states, kernel.ops)  # as compiled
    states[29, 39] = table.shape[1] - 255  # its last level would be past the end
    with pytest.raises(ValueError, match="state outside"):
        _fused.apply(src, dst, 1200, table, is_float, states, kernel.ops)
    states[29, 39] = table.shape[1] - 256  # the last state: inside
    _fused.apply(src, dst, 1200, table, is_float, states, kernel.ops)
    states[29, 39] = -1
    with pytest.raises(ValueError, match="state outside"):
        _fused.apply(src, dst, 1200, table, is_float, states, kernel.ops)
    states[29, 39], states[0, 0] = 0, table.shape[1]  # in the first block this time
    with pytest.raises(ValueError, match="state outside"):
        _fused.apply(src, dst, 1200, table, is_float, states, kernel.ops)
    with pytest.raises(ValueError, match="expected 1200"):
        _fused.apply(src, dst, 1200, table, is_float, states[:10], kernel.ops)
    with pytest.raises(ValueError, match="format i"):
        _fused.apply(src, dst, 1200, table, is_float, states.astype(np.int64), kernel.ops)


def test_the_kernel_refuses_pictures_tables_and_operations_of_the_wrong_shape() -> None:
    image = Image.new("RGB", (40, 30))
    kernel, table, src, dst = _parts("clarendon", image)
    assert table.dtype == np.float32
    with pytest.raises(ValueError, match="expected size"):
        _fused.apply(src, dst, 1201, table, True, None, kernel.ops)
    short, odd = np.ascontiguousarray(table[:, :255]), table.ravel()[:-1]
    for bad in (short, odd):
        with pytest.raises(ValueError, match="malformed"):
            _fused.apply(src, dst, 1200, bad, True, None, kernel.ops)
    with pytest.raises(ValueError, match="malformed"):
        _fused.apply(src, dst, 1200, table, True, None, np.ascontiguousarray(kernel.ops[:, :7]))
    with pytest.raises(ValueError, match="malformed"):  # an 8-bit table is the whole look
        _fused.apply(src, dst, 1200, np.zeros((3, 256), np.uint8), False, None, kernel.ops)
    with pytest.raises(ValueError, match="format f"):
        _fused.apply(src, dst, 1200, table.astype(np.float64), True, None, kernel.ops)
    with pytest.raises(ValueError, match="format f"):
        _fused.apply(src, dst, 1200, table, True, None, kernel.ops.astype(np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _fused.apply(src, dst, 1200, table[:, ::-1], True, None, kernel.ops)


def test_an_identity_table_is_converted_and_never_read_at_a_state() -> None:
    inkwell = passes_for(RECIPES["inkwell"], 40, 30).kernel
    assert inkwell is not None and inkwell.table is None  # no overlay, no per-channel prefix
    assert passes_for(RECIPES["clarendon"], 40, 30).kernel.table is not None  # type: ignore
    image = Image.new("RGB", (40, 30), (9, 99, 199))
    src, dst = image.__arrow_c_array__()[1], image.copy().__arrow_c_array__()[1]
    with pytest.raises(ValueError, match="malformed"):
        _fused.apply(src, dst, 1200, None, True, np.zeros(1200, np.int32), inkwell.ops)
    with pytest.raises(ValueError, match="malformed"):
        _fused.apply(src, dst, 1200, None, False, None, inkwell.ops)
