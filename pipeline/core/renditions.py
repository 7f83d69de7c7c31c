"""Resizes and square crops: turn the working picture into a ladder's renditions.

Each rendition is resampled from the smallest picture already made that still covers it (so
``w320`` comes from ``w640``, not from the full-size source), which keeps the cost of a ladder
close to the cost of its largest rung.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from pipeline.core.ladders import Rendition

RESAMPLE = Image.Resampling.LANCZOS
# Output rows resampled at a time. Pillow resamples width first, into an intermediate as wide as
# the output and as tall as the input; in bands, that intermediate is a few MB instead of one
# the size of the input (9 MB for a half-scale 12 MP photo), which sets a worker's peak memory.
BAND_ROWS = 256
# Up to this many bytes of that intermediate (4 a pixel), one pass: a band's own set-up costs
# more than the memory is worth (a 12 MP photo's classic working picture, 816 x 756 x 4, takes
# 1.4 ms in one pass against 1.8 in three bands).
ONE_PASS_BYTES = 4 << 20


@dataclass(frozen=True)
class Made:
    """A picture already made in this ladder, and whether it was cropped square."""

    image: Image.Image
    square: bool


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` resampled to ``size`` (Lanczos), or itself when it already has that size.

    Tall outputs whose intermediate would be over :data:`ONE_PASS_BYTES` are resampled band by
    band: each band reads the same source rows, with the same filter weights, as a single pass
    would (Pillow's ``box`` keeps the filter's support outside the box), so the result differs
    from one pass by at most a rounding step.
    """
    if image.size == size:
        return image
    if size[1] <= 2 * BAND_ROWS or size[0] * image.height * 4 <= ONE_PASS_BYTES:
        return image.resize(size, RESAMPLE)
    out = Image.new(image.mode, size)
    scale = image.height / size[1]
    for top in range(0, size[1], BAND_ROWS):
        bottom = min(top + BAND_ROWS, size[1])
        box = (0.0, top * scale, float(image.width), bottom * scale)
        out.paste(image.resize((size[0], bottom - top), RESAMPLE, box=box), (0, top))
    return out


def render_ladder(working: Image.Image,
                  ladder: tuple[Rendition, ...]) -> list[tuple[Rendition, Image.Image]]:
    """Every rendition of ``ladder`` from the upright ``working`` picture, cascading."""
    made = [Made(working, square=False)]
    out: list[tuple[Rendition, Image.Image]] = []
    for rendition in sorted(ladder, key=lambda r: r.size, reverse=True):
        target = rendition.target(*working.size)
        image = cut(_parent(made, rendition, target[0]), rendition, target)
        made.append(Made(image, rendition.square))
        out.append((rendition, image))
    return out


def cut(parent: Made, rendition: Rendition, target: tuple[int, int]) -> Image.Image:
    """Resample ``parent`` to ``target``, cropping the centre square first for ``sqN``."""
    if not rendition.square or parent.square:
        return resize(parent.image, target)
    width, height = parent.image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    if target == (side, side):
        return parent.image.crop(box)
    return parent.image.resize(target, RESAMPLE, box=box)


def _parent(made: list[Made], rendition: Rendition, width: int) -> Made:
    """The smallest picture made so far that holds every pixel ``rendition`` needs."""
    def covers(m: Made) -> bool:
        if rendition.square:
            return min(m.image.size) >= width
        return not m.square and m.image.width >= width

    return min((m for m in made if covers(m)), key=lambda m: m.image.width * m.image.height)
