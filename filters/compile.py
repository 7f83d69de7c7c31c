"""Compile a recipe into the fewest passes over the pixels, keeping the browser's arithmetic.

Work that does not depend on the pixel is done once per look (and per picture size):

* Separable overlays are per-channel functions of the backdrop's 8-bit level, given the overlay's
  8-bit premultiplied value at that pixel. Flat colours have one such value; a rasterised,
  dithered gradient has a limited set of them ("states"). So the overlays become a table indexed
  by (state, level), computed with the exact 8-bit blends, and each pixel is one lookup per
  channel. The states of a gradient look are found once per picture size and cached.
* The filter functions up to the first colour matrix are folded into the same table; a look with
  no colour matrix is nothing but that table (uint8).
* A run of per-channel functions after a matrix collapses into one affine map and one clamp:
  ``clamp(s * clamp(a y + b, lo, hi) + o, 0, 1) = clamp(s a y + s b + o, lo', hi')``.
* Flat non-separable overlays (hue, color) run in float on channel planes, with the constant
  source's share of the formula precomputed (:mod:`filters.nonseparable`).

Pixels are processed as three contiguous channel planes, on which numpy is several times faster
than on interleaved RGB. :func:`execute` runs a plan exactly over a picture: the reference that
the tests hold :mod:`filters.passes` (what the looks run as) to, and what it samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from filters.css import Step, to_8bit
from filters.gradient import Gradient
from filters.layers import Overlay, paint_source, source8
from filters.looks import Recipe
from filters.nonseparable import NON_SEPARABLE, paint_flat

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
LEVELS = np.arange(256, dtype=np.uint8)
STATES_PER_CHUNK = 256


@dataclass(frozen=True)
class Clamped:
    """``clamp(scale * y + offset, lo, hi)`` per channel (scale >= 0)."""

    scale: float = 1.0
    offset: float = 0.0
    lo: float = 0.0
    hi: float = 1.0

    def then(self, step: Step) -> Clamped:
        """This map followed by the per-channel ``step`` (and its clamp to [0, 1])."""
        s, o = step.scale, step.offset
        return Clamped(s * self.scale, s * self.offset + o,
                       min(max(s * self.lo + o, 0.0), 1.0), min(max(s * self.hi + o, 0.0), 1.0))

    def __call__(self, x: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.clip(x * self.scale + self.offset, self.lo, self.hi)


@dataclass(frozen=True)
class Plan:
    """A compiled look for one picture size."""

    flat_first: Overlay | None  # a flat non-separable overlay painted before the table
    states: I32 | None  # (H, W): each pixel's overlay state times 256; None for one state
    table: F32 | U8  # (3, states * 256); uint8 when it is the whole look
    tail: tuple[Clamped | F32, ...]  # Clamped maps and 3x3 matrices (transposed), in order


@lru_cache(maxsize=4)
def plan_for(recipe: Recipe, width: int, height: int) -> Plan:
    """The compiled ``recipe`` for pictures of ``width`` x ``height`` (cached).

    A gradient look's plan holds a state plane of 4 bytes a pixel (6 MB at 1080x1440), so only a
    few sizes are kept: photos of one aspect ratio, the common case, share one plan.
    """
    overlays, flat_first = recipe.overlays, None
    if overlays and overlays[0].mode in NON_SEPARABLE:
        flat_first, overlays = overlays[0], overlays[1:]
    if any(o.mode in NON_SEPARABLE for o in overlays):
        raise ValueError("only a leading, flat non-separable overlay is supported")
    states, layers = _states(overlays, width, height)
    prefix, tail = _split(recipe.chain)
    values = prefix(_overlay_table(overlays, layers).astype(np.float64) / 255)
    table: F32 | U8 = to_8bit(values) if not tail else values.astype(np.float32)
    return Plan(flat_first, states, table.copy(order="C"), tail)


BAND_PIXELS = 1 << 17  # pixels per band: measured best here (its float planes stay in L2)


def execute(plan: Plan, image: U8) -> U8:
    """Run a compiled look over an (H, W, 3) uint8 picture; returns a new array.

    The picture is processed in bands of rows, so that the chain's intermediate planes stay in
    cache instead of streaming through memory once per operation.
    """
    out = np.empty(image.shape, dtype=np.uint8)  # C order even when image is a view
    rows = max(1, BAND_PIXELS // image.shape[1])
    for top in range(0, image.shape[0], rows):
        band = slice(top, top + rows)
        out[band] = _band(plan, image[band], None if plan.states is None else plan.states[band])
    return out


def _band(plan: Plan, layer: U8, states: I32 | None) -> U8:
    planes = _table(plan, layer, states)
    if plan.tail:
        planes = [_round(p) for p in tail(plan, planes)]
    return np.stack(planes, axis=-1)


def _table(plan: Plan, layer: U8, states: I32 | None) -> list[npt.NDArray[Any]]:
    if plan.flat_first is not None:
        layer = paint_flat(layer, plan.flat_first)
    return [_lookup(plan.table[c], layer[..., c], states) for c in range(3)]


def floats(plan: Plan, pixels: U8) -> list[F32]:
    """A look without gradients before its final rounding: three float planes in [0, 1]
    (what :mod:`filters.passes` samples to build its colour cube)."""
    if plan.states is not None:
        raise ValueError("a gradient look depends on where a pixel is, not only its colour")
    planes = _table(plan, pixels, None)
    if not plan.tail:
        return [p.astype(np.float32) / np.float32(255) for p in planes]
    return tail(plan, planes)


def tail(plan: Plan, planes: list[F32]) -> list[F32]:
    """The matrices and clamps that follow the table, on float planes in [0, 1]."""
    for op in plan.tail:
        planes = _clamped(planes, op) if isinstance(op, Clamped) else _matrix(planes, op)
    return planes


def _lookup(table: npt.NDArray[Any], levels: U8, states: I32 | None) -> npt.NDArray[Any]:
    if states is None:
        return np.take(table, levels, mode="wrap")
    return np.take(table, states + levels)


def _states(overlays: tuple[Overlay, ...], width: int,
            height: int) -> tuple[I32 | None, list[tuple[I32, I32]]]:
    """Each pixel's state (index into the distinct overlay values, times 256), and per overlay
    the 8-bit premultiplied (colour, alpha) of every state."""
    sources = [source8(o, width, height) for o in overlays]
    if not any(isinstance(o.source, Gradient) for o in overlays):
        return None, [(s.reshape(1, 1, 3), a.reshape(1, 1, 1)) for s, a in sources]
    key: npt.NDArray[Any] = np.zeros((height, width), dtype=np.uint32)
    for index, (s, a) in enumerate(sources):  # each overlay's (r, g, b, a) in 32 bits of key
        packed = np.broadcast_to(a[..., 0], (height, width)).astype(np.uint32)
        for channel, shift in enumerate((24, 16, 8)):
            packed |= np.broadcast_to(s[..., channel], (height, width)).astype(np.uint32) << shift
        key = packed if index == 0 else (key.astype(np.uint64) << 32) | packed
    unique, inverse = np.unique(key.ravel(), return_inverse=True)
    unique = unique.astype(np.int64)
    layers = []
    for index in range(len(sources)):
        word = (unique >> (32 * (len(sources) - 1 - index))) & 0xFFFFFFFF
        colour = np.stack([(word >> shift) & 255 for shift in (24, 16, 8)], -1)
        layers.append((colour.astype(np.int32)[:, None, :],
                       (word & 255).astype(np.int32)[:, None, None]))
    states = (inverse.reshape(height, width) * 256).astype(np.int32)
    return states, layers


def _overlay_table(overlays: tuple[Overlay, ...], layers: list[tuple[I32, I32]]) -> U8:
    """(3, states * 256): what the overlays make of each backdrop level in each state."""
    count = max((s.shape[0] for s, _ in layers), default=1)
    table = np.empty((count, 256, 3), dtype=np.uint8)
    for start in range(0, count, STATES_PER_CHUNK):  # bounded temporaries, however many states
        chunk = slice(start, start + STATES_PER_CHUNK)
        part = np.broadcast_to(LEVELS[None, :, None], table[chunk].shape).copy()
        for overlay, (s, sa) in zip(overlays, layers, strict=True):
            part = paint_source(part, s[chunk] if len(s) > 1 else s,
                                sa[chunk] if len(sa) > 1 else sa, overlay)
        table[chunk] = part
    return table.reshape(-1, 3).T


def _split(chain: tuple[Step, ...]) -> tuple[Clamped, tuple[Clamped | F32, ...]]:
    """The per-channel prefix of ``chain`` as one map, and the rest as fused operations."""
    prefix, index = Clamped(), 0
    while index < len(chain) and chain[index].per_channel:
        prefix, index = prefix.then(chain[index]), index + 1
    tail: list[Clamped | F32] = []
    for step in chain[index:]:
        if step.matrix is not None:
            tail.append(np.asarray(step.matrix, dtype=np.float32))
        elif tail and isinstance(tail[-1], Clamped):
            tail[-1] = tail[-1].then(step)
        else:
            tail.append(Clamped().then(step))
    return prefix, tuple(tail)


def _clamped(planes: list[F32], op: Clamped) -> list[F32]:
    for plane in _distinct(planes):
        np.multiply(plane, np.float32(op.scale), out=plane)
        np.add(plane, np.float32(op.offset), out=plane)
        np.clip(plane, np.float32(op.lo), np.float32(op.hi), out=plane)
    return planes


def _matrix(planes: list[F32], matrix: F32) -> list[F32]:
    """``clamp(M @ rgb, 0, 1)`` on planes; a row equal to an earlier one (grayscale(1)) reuses
    its plane instead of computing it again."""
    scratch = np.empty_like(planes[0])
    out: list[F32] = []
    for index, row in enumerate(matrix):
        same = [i for i in range(index) if np.array_equal(matrix[i], row)]
        if same:
            out.append(out[same[0]])
            continue
        acc = planes[0] * row[0]
        for k in (1, 2):
            np.multiply(planes[k], row[k], out=scratch)
            acc += scratch
        out.append(np.clip(acc, 0.0, 1.0, out=acc))
    return out


def _distinct(planes: list[F32]) -> list[F32]:
    """The planes once each (a grey result shares one plane between channels)."""
    seen: dict[int, F32] = {}
    for plane in planes:
        seen.setdefault(id(plane), plane)
    return list(seen.values())


def _round(plane: F32) -> U8:
    return (plane * np.float32(255) + np.float32(0.5)).astype(np.uint8)
