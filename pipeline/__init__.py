"""photopipe's pipeline: safe decode, rendition ladders, looks, encode, storage and metadata.

The public entry points are :func:`render` (pure, bytes in, renditions out) and
:func:`process` (one job, through an object store and a metadata store).
"""

from pipeline.core import Output, Rendered, render
from pipeline.errors import ImageRejected, PermanentError, PhotopipeError, TransientError
from pipeline.settings import Settings

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
