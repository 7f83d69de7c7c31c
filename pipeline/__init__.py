"""photopipe's pipeline: safe decode, rendition ladders, looks, encode, storage and metadata.

The public entry points are :func:`render` (the pure core, :mod:`pipeline.core`: bytes in,
renditions out) and :func:`pipeline.jobs.process` (one job, through an object store and a
metadata store).

The tree is the architecture: the faces (:mod:`pipeline.cli`, ``workers/``) call the use cases
at this level (:mod:`~pipeline.jobs`, :mod:`~pipeline.producer`, :mod:`~pipeline.relay`,
:mod:`~pipeline.reprocess`, :mod:`~pipeline.sweep`), which drive the core through the ports
(:mod:`pipeline.storage`, :mod:`pipeline.metadata`); everything stands on
:mod:`~pipeline.settings`, :mod:`~pipeline.errors` and :mod:`~pipeline.records`.

The rendering names load on first use, so the stores, the settings and the errors can be
imported without Pillow or numpy (a metadata tool, or a worker's main process, needs neither).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.errors import ImageRejected, PermanentError, PhotopipeError, TransientError
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.core import Output, Rendered, render

__all__ = [
    "ImageRejected",
    "Output",
    "PermanentError",
    "PhotopipeError",
    "Rendered",
    "Settings",
    "TransientError",
    "render",
]
_RENDERING = frozenset({"Output", "Rendered", "render"})


def __getattr__(name: str) -> Any:
    if name in _RENDERING:
        from pipeline import core

        return getattr(core, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
