"""Previews of a stored photo under every look: the strip a page shows under a photo, so its
owner can pick a look and see the photo rendered again with it. Drawn by ``serve`` from the
stored original (never by the browser), at thumbnail size; the original's small square is
kept for the next looks of the same photo (a strip asks for every look at once)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from PIL import Image

from pipeline.core.preview import look_preview, looks, square
from pipeline.errors import PhotoNotFound
from pipeline.metadata import MetadataStore
from pipeline.settings import Settings
from pipeline.storage import ObjectStore

SIZE = 120  # pixels a side
KEPT = 32  # originals' squares kept, the most recently used

_squares: OrderedDict[str, Image.Image] = OrderedDict()
_lock = threading.Lock()

__all__ = ["SIZE", "looks", "preview"]


def preview(photo_id: int, user_id: int, look: str, *, store: ObjectStore, db: MetadataStore,
            settings: Settings) -> bytes:
    """JPEG bytes of the user's photo under ``look`` ("normal": none).

    Raises:
        PhotoNotFound: no such photo of this user's, or no such look.
        ImageRejected: the original is not a picture (its render failed for it too).
    """
    if look not in looks():
        raise PhotoNotFound(f"no look {look!r}")
    row = db.get(photo_id)
    if row is None or row.user_id != user_id:
        raise PhotoNotFound(f"no photo {photo_id}")
    return look_preview(_square(row.source_key, store, settings), look)


def _square(key: str, store: ObjectStore, settings: Settings) -> Image.Image:
    with _lock:
        if key in _squares:
            _squares.move_to_end(key)
            return _squares[key]
    base = square(store.get(key, max_bytes=settings.limits.max_bytes), settings.limits, SIZE)
    with _lock:
        _squares[key] = base
        while len(_squares) > KEPT:
            _squares.popitem(last=False)
    return base
