"""The pure core: bytes of an upload in, encoded renditions out. No I/O, no global state.

The web tier (for previews), the job runner, the CLI and the benchmarks all call :func:`render`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from PIL import Image

import filters
from pipeline.core import ladders
from pipeline.core.decode import decode
from pipeline.core.encode import encode
from pipeline.core.placeholder import Placeholder, placeholder
from pipeline.core.renditions import render_ladder
from pipeline.records import SourceInfo
from pipeline.settings import Encoding, Limits

# The placeholder is handed out before the encodes when they are this many pixels or more (each
# format of a rendition counted): a 12 MP photo's default ladder, about 2.1 million, whose
# encodes and writes take tens of milliseconds, time a page can show the placeholder in. Below
# it, as for the classic ladder (0.49 million, about 4 ms of encoding), the renditions are
# stored about as soon as a write of the placeholder alone would be, and the placeholder comes
# with them (the job saves a transaction a photo).
EARLY_PLACEHOLDER_PIXELS = 1_000_000


@dataclass(frozen=True)
class Output:
    """One encoded file of one rendition."""

    name: str
    format: str
    width: int
    height: int
    data: bytes

    @property
    def filename(self) -> str:
        """``w1080.jpg`` and the like: the key suffix and the name in :attr:`Rendered.outputs`."""
        return f"{self.name}.{self.format}"


@dataclass(frozen=True)
class Rendered:
    """Everything :func:`render` made from one upload."""

    source: SourceInfo
    files: tuple[Output, ...]
    ladder: str
    filter: str | None
    strength: float
    # Seconds spent in each stage: decode, look (only with one), resize, placeholder, encode.
    timings: Mapping[str, float] = field(default_factory=dict, compare=False)
    placeholder: Placeholder | None = None

    @property
    def outputs(self) -> dict[str, bytes]:
        """File name (``"w1080.jpg"``, ``"w1080.webp"``, ...) to encoded bytes."""
        return {f.filename: f.data for f in self.files}


def render(data: bytes, *, filter: str | None = None, strength: float = 1.0,
           ladder: str = "default", limits: Limits | None = None,
           encoding: Encoding | None = None,
           on_placeholder: Callable[[Placeholder], None] | None = None) -> Rendered:
    """Decode ``data`` safely and render every rendition of ``ladder``, with an optional look.

    Args:
        data: the upload's bytes, untrusted.
        filter: a look from :func:`filters.names`, or None for none.
        strength: how much of the look, from 0 (none) to 1 (all of it).
        ladder: a ladder from :data:`pipeline.core.ladders.LADDERS`.
        limits: what the upload may declare (default: :class:`Limits`'s defaults).
        encoding: encoder settings (default: JPEG q85, WebP q80).
        on_placeholder: called with the placeholder as soon as it is known, before the
            renditions are encoded, when they hold at least :data:`EARLY_PLACEHOLDER_PIXELS`
            (the job records it, so a photo still rendering has it); not called otherwise.

    Raises:
        ImageRejected: the upload is not a picture photopipe will render (its ``code`` says why).
        OutOfMemory: decoding it needs more memory than this process can get (not a verdict:
            the job retries it within its attempts).
        ValueError: an argument is wrong (unknown look or ladder, strength out of range).
    """
    spec = check_options(ladder, filter, strength)
    timings: dict[str, float] = {}
    working, source = _working(data, spec, filter, strength, limits or Limits(),
                               timings=timings)
    clock = time.perf_counter()
    images = render_ladder(working, spec)
    timings["resize"], clock = _lap(clock)
    shown = placeholder(images[0][1])  # the largest rendition
    timings["placeholder"], clock = _lap(clock)
    if on_placeholder is not None and _pixels(images) >= EARLY_PLACEHOLDER_PIXELS:
        on_placeholder(shown)
        clock = time.perf_counter()
    files = tuple(
        Output(r.name, fmt, *image.size, encode(image, fmt, encoding or Encoding()))
        for r, image in images
        for fmt in r.formats
    )
    timings["encode"], clock = _lap(clock)
    return Rendered(source, files, ladder, filter, strength, timings, shown)


def _pixels(images: list[tuple[ladders.Rendition, Image.Image]]) -> int:
    """The pixels left to encode: each rendition's, once for each of its formats."""
    return sum(image.width * image.height * len(r.formats) for r, image in images)


def _lap(since: float) -> tuple[float, float]:
    """Seconds since ``since``, and now (the next lap's start)."""
    now = time.perf_counter()
    return now - since, now


def check_options(ladder: str, look: str | None, strength: float) -> tuple[ladders.Rendition, ...]:
    """Validate how a photo is to be rendered; return the ladder's renditions.

    Raises:
        ValueError: an unknown ladder or look (the message lists the known ones), or a strength
            outside [0, 1].
    """
    spec = ladders.get(ladder)
    if look is not None:
        filters.get(look)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, not {strength}")
    return spec


def _working(data: bytes, spec: tuple[ladders.Rendition, ...], look: str | None,
             strength: float, limits: Limits, *,
             timings: dict[str, float]) -> tuple[Image.Image, SourceInfo]:
    """The upright picture every rendition cascades from, with the look applied.

    Intermediates are dropped as soon as they are used: a worker's peak memory is set here.
    """
    clock = time.perf_counter()
    decoded = decode(data, limits, need=ladders.need(spec),
                     fit=lambda width, height: ladders.working_size(width, height, spec))
    timings["decode"], clock = _lap(clock)
    if look is None:
        return decoded.image, decoded.source
    source, image = decoded.source, decoded.image
    del decoded
    image = filters.apply_image(image, look, strength)
    timings["look"], clock = _lap(clock)
    return image, source
