"""The pure render core: an upload's bytes in, encoded renditions out. No I/O, no global state.

It knows no port (storage, metadata), no broker and no face: the job runner
(:mod:`pipeline.jobs`), the CLI, the workers, the HTTP face and the benchmarks all call the same
:func:`render`. Its settings come in as plain values (:class:`~pipeline.settings.Limits`,
:class:`~pipeline.settings.Encoding`), never read from the environment here.

- :mod:`~pipeline.core.decode`: the allow-list, the limits, then Pillow's decode, upright.
- :mod:`~pipeline.core.colour`: the picture's profile converted to sRGB.
- :mod:`~pipeline.core.ladders`: which renditions a ladder makes; :mod:`~pipeline.core.renditions`
  resizes and crops them, each from the last.
- :mod:`~pipeline.core.encode`: JPEG and WebP, with no metadata.
- :mod:`~pipeline.core.placeholder` (over :mod:`~pipeline.core.thumbhash`): what a page shows
  before the thumbnail arrives: a ThumbHash, a colour, an aspect.
- :mod:`~pipeline.core.rendering`: :func:`render`, the stages in order.
- :mod:`~pipeline.core.spec`: the fingerprint of how a photo was rendered (``--stale``).
- :mod:`~pipeline.core.preview`: the CLI's contact sheet of every look.
- :mod:`~pipeline.core.startup`: Pillow's process-wide knobs, set once by each entry point.
"""

from __future__ import annotations

from pipeline.core.placeholder import Placeholder
from pipeline.core.rendering import Output, Rendered, check_options, render

__all__ = ["Output", "Placeholder", "Rendered", "check_options", "render"]
