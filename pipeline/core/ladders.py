"""Rendition ladders: which thumbnails a photo gets, and the geometry of each.

A rendition is either ``wN`` (N pixels wide, height from the aspect ratio) or ``sqN`` (an N x N
centre-cropped square). Nothing is ever upscaled: a source narrower than N gives a rendition as
wide as the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Rendition:
    """One rung of a ladder."""

    name: str
    size: int
    square: bool
    formats: tuple[str, ...] = ("jpg",)

    def target(self, width: int, height: int) -> tuple[int, int]:
        """Output (width, height) of this rendition from an upright picture of that size."""
        if self.square:
            side = min(self.size, width, height)
            return side, side
        out_width = min(self.size, width)
        return out_width, max(1, round(height * out_width / width))

    @property
    def need(self) -> tuple[int, int]:
        """Smallest upright (width, min side) a source needs to give this rendition in full."""
        return (self.size, self.size) if self.square else (self.size, 1)


def _w(size: int, *formats: str) -> Rendition:
    return Rendition(f"w{size}", size, False, formats or ("jpg",))


def _sq(size: int) -> Rendition:
    return Rendition(f"sq{size}", size, True)


LADDERS: Mapping[str, tuple[Rendition, ...]] = MappingProxyType({
    # Today's feed: a full-width picture in JPEG and WebP, two smaller widths, a grid square.
    "default": (_w(1080, "jpg", "webp"), _w(640), _w(320), _sq(150)),
    # Instagram as launched in 2011: every picture square.
    "classic": (_sq(612), _sq(306), _sq(150)),
})


class UnknownLadder(ValueError):
    """A ladder name that is not in :data:`LADDERS`."""


def get(name: str) -> tuple[Rendition, ...]:
    """The renditions of the ladder ``name``, largest first.

    Raises:
        UnknownLadder: ``name`` is not a known ladder; the message lists those that are.
    """
    try:
        return LADDERS[name]
    except KeyError:
        raise UnknownLadder(
            f"unknown ladder {name!r}; choose one of: {', '.join(sorted(LADDERS))}") from None


def need(ladder: tuple[Rendition, ...]) -> tuple[int, int]:
    """Smallest upright (width, min side) from which all of ``ladder`` comes out whole."""
    return max(r.need[0] for r in ladder), max(r.need[1] for r in ladder)


def working_size(width: int, height: int, ladder: tuple[Rendition, ...]) -> tuple[int, int]:
    """The smallest size, never above the source's, that still covers every rendition.

    The look is applied once at this size and every rendition cascades from the result, so for
    the usual photo this *is* the largest rendition and costs no extra resize.
    """
    need_w, need_side = need(ladder)
    scale = min(1.0, max(need_w / width, need_side / min(width, height)))
    out_w = max(round(width * scale), min(need_w, width))
    out_h = max(round(height * scale), 1)
    side = min(need_side, width, height)
    out_w = max(out_w, side)
    out_h = max(out_h, side)
    return out_w, out_h
