"""What the outside sees of a photo (the API's answers, the webhooks' payloads): its JSON
document, and its renditions' URLs, built from the rows alone (no request to the object
store): a URL under ``PHOTOPIPE_PUBLIC_BASE_URL``, else the store's own (presigned S3), else a
path ``serve`` answers itself, signed and expiring. A photo that is not ready has no rendition
URL at all."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from pipeline.metadata import PhotoRow, RenditionRow
from pipeline.settings import Settings
from pipeline.storage import ObjectStore

URL_SECONDS = 3600  # how long a presigned or signed rendition URL is good for
FILES = "/v1/files/"  # where serve answers objects of a store that has no URLs of its own


def document(row: PhotoRow, renditions: list[RenditionRow],
             url: Callable[[str], str]) -> dict[str, Any]:
    """The API's photo document; ids are strings (a 64-bit id does not survive a JavaScript
    number). ``url`` turns an object key into the URL a client fetches it from."""
    ready = row.status == "ready"
    return {
        "photo_id": str(row.id),
        "user_id": None if row.user_id is None else str(row.user_id),
        "status": row.status,
        "error": {"code": row.error_code or "failed", "message": row.error_message or ""}
        if row.status == "failed" else None,
        "generation": row.generation,
        "filter": row.filter,
        "strength": row.strength,
        "ladder": row.ladder,
        "placeholder": None if row.placeholder is None else json.loads(row.placeholder),
        "renditions": [{"name": r.name, "format": r.format, "width": r.width,
                        "height": r.height, "bytes": r.bytes, "url": url(r.key)}
                       for r in renditions] if ready else [],
    }


def etag(row: PhotoRow) -> str:
    """Changes whenever the document can: its state, generation, lease or last update (not
    with the URLs, which are signed anew on every request)."""
    state = f"{row.id}:{row.status}:{row.generation}:{row.lease}:{row.updated_at}:" \
        f"{row.placeholder}"
    return f'"{hashlib.sha256(state.encode()).hexdigest()[:32]}"'


class Links:
    """Rendition URLs for one deployment."""

    def __init__(self, settings: Settings, store: ObjectStore, key: bytes) -> None:
        self.base, self.store, self.key = settings.public_base_url, store, key

    def url(self, object_key: str, *, now: float | None = None) -> str:
        if self.base is not None:
            return f"{self.base}/{quote(object_key)}"
        presigned = self.store.url(object_key, URL_SECONDS)
        if presigned is not None:
            return presigned
        expires = int((time.time() if now is None else now) + URL_SECONDS)
        return f"{FILES}{quote(object_key)}?expires={expires}&signature=" + \
            self.signature(object_key, expires)

    def signature(self, object_key: str, expires: int) -> str:
        message = f"files:{object_key}:{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def verify(self, object_key: str, expires: str, signature: str) -> bool:
        """Whether a local file URL is one this deployment signed, and still good."""
        if not (expires.isascii() and expires.isdigit()) or int(expires) < time.time():
            return False
        return hmac.compare_digest(self.signature(object_key, int(expires)), signature)
