"""A compiled look in one pass over a Pillow image's pixels (the C kernel in ``_fused.c``).

:func:`filters.compile.execute` evaluates a look plane by plane in numpy: one pass over memory per
operation. The kernel runs the same :class:`~filters.compile.Plan` with the same float32
arithmetic in the same order, a block of pixels at a time, reading the source image's memory and
writing the new image's directly (both shared through Pillow's Arrow export, no copy): its
output is bit for bit ``execute``'s, in about the time of one ``Image.point``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from filters import _fused
from filters.compile import Clamped, Plan
from filters.nonseparable import paint_flat

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
OP_SIZE = 10  # an operation: its code, then up to nine parameters (as _fused.c reads them)
MATRIX, CLAMPED = 0.0, 1.0


IDENTITY = np.arange(256, dtype=np.float32) / np.float32(255)  # as _fused.c converts a level


@dataclass(frozen=True)
class Kernel:
    """A plan as the kernel takes it: the table (None for the identity, which the kernel
    converts instead of reading: inkwell's), and the tail as rows of ``OP_SIZE`` floats."""

    plan: Plan
    table: U8 | F32 | None
    ops: F32


def kernel_for(plan: Plan) -> Kernel:
    """``plan`` laid out for the kernel."""
    ops = np.zeros((len(plan.tail), OP_SIZE), dtype=np.float32)
    for row, op in zip(ops, plan.tail, strict=True):
        if isinstance(op, Clamped):
            row[0], row[1:5] = CLAMPED, (op.scale, op.offset, op.lo, op.hi)
        else:
            row[0], row[1:] = MATRIX, np.asarray(op, dtype=np.float32).ravel()
    identity = plan.states is None and plan.table.dtype == np.float32 and all(
        np.array_equal(channel, IDENTITY) for channel in plan.table)
    return Kernel(plan, None if identity else plan.table, ops)  # C order: plan_for copies it


def run(kernel: Kernel, image: Image.Image) -> Image.Image:
    """``image`` (RGB) under the compiled look; a new image."""
    plan = kernel.plan
    if plan.flat_first is not None:  # a flat hue or colour overlay first: painted in numpy
        image = Image.fromarray(paint_flat(np.asarray(image), plan.flat_first))
    out = _blank(image.size)
    pixels = image.width * image.height
    _fused.apply(_exported(image), out.__arrow_c_array__()[1], pixels, kernel.table,
                 plan.table.dtype == np.float32, plan.states, kernel.ops)
    return out


def _exported(image: Image.Image) -> object:
    """``image``'s pixels as an Arrow array capsule, copied into one block if they are not."""
    try:
        return image.__arrow_c_array__()[1]
    except ValueError:  # larger than Pillow's block size (16 MB): stored in several blocks
        block = _blank(image.size)
        block.paste(image)
        return block.__arrow_c_array__()[1]


def _blank(size: tuple[int, int]) -> Image.Image:
    """A new RGB image in one block of memory, as Arrow export needs (``Image.new`` splits one
    larger than 16 MB); ``Image.fromarrow`` makes its images the same way."""
    from PIL import _imaging

    return Image.Image()._new(_imaging.new_block("RGB", size))
