"""What every handler reaches the use cases through: the settings, a store and a database per
thread, the publisher, the signing key; and the check of a request's ticket."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request

from pipeline.documents import Links
from pipeline.errors import PhotoNotFound
from pipeline.jobs import Options
from pipeline.metadata import MetadataStore, PhotoRow, RenditionRow
from pipeline.producer import Publisher, Upload, delete, resubmit, submit
from pipeline.settings import Settings
from pipeline.storage import ObjectStore
from pipeline.uploads import Uploads
from pipeline.web import tickets
from pipeline.web.errors import RateLimited


@dataclass
class Door:
    """What the handlers reach the use cases with: the settings, a store and a database per
    thread (connections are not shared across threads), the publisher, the URL builder."""

    settings: Settings
    open_store: Callable[[], ObjectStore]
    open_db: Callable[[], MetadataStore]
    publisher: Publisher
    key: bytes
    _local: threading.local = field(default_factory=threading.local)

    def store(self) -> ObjectStore:
        if not hasattr(self._local, "store"):
            self._local.store = self.open_store()
        store: ObjectStore = self._local.store
        return store

    def db(self) -> MetadataStore:
        if not hasattr(self._local, "db"):
            self._local.db = self.open_db()
        db: MetadataStore = self._local.db
        return db

    def links(self) -> Links:
        return Links(self.settings, self.store(), self.key)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """On shutdown, the publisher's own resources go (the embedded default's pool)."""
        yield
        close = getattr(self.publisher, "close", None)
        if close is not None:
            close()

    def admit(self, user_id: int) -> None:
        """Count an upload the user starts. Raises RateLimited past the minute's limit."""
        limit = self.settings.uploads_per_minute
        if limit:
            count, wait = self.db().count_upload(user_id)
            if count > limit:
                raise RateLimited(f"over {limit} uploads this minute", math.ceil(wait))

    def submit(self, upload: Upload) -> int:
        return submit(upload, self.store(), self.db(), self.publisher, self.settings)

    def photo(self, photo_id: int) -> tuple[PhotoRow | None, list[RenditionRow]]:
        row = self.db().get(photo_id)
        return row, self.renditions(row)

    def renditions(self, row: PhotoRow | None) -> list[RenditionRow]:
        return self.db().renditions(row.id) if row is not None and row.status == "ready" else []

    def owned(self, photo_id: int, user_id: int) -> PhotoRow:
        """The photo's row if it is the user's. Raises PhotoNotFound otherwise."""
        row = self.db().get(photo_id)
        if row is None or row.user_id != user_id:
            raise PhotoNotFound(f"no photo {photo_id}")
        return row

    def rerender(self, row: PhotoRow, options: Options) -> None:
        """Render ``row``'s photo again (its owner was checked by :meth:`owned`)."""
        resubmit(row.id, options, self.db(), self.publisher, self.settings)

    def delete(self, photo_id: int, user_id: int) -> None:
        self.owned(photo_id, user_id)
        delete(photo_id, self.store(), self.db(), self.settings)

    def listing(self, user_id: int, before: int | None,
                limit: int) -> list[tuple[PhotoRow, list[RenditionRow]]]:
        rows = self.db().photos_of(user_id, before, limit)
        return [(row, self.renditions(row)) for row in rows]

    def uploads(self) -> Uploads:
        return Uploads(self.store(), self.db(), self.publisher, self.settings)


def authorise(request: Request, door: Door) -> tickets.Ticket:
    """The request's ticket, verified. Raises Unauthorized."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise tickets.Unauthorized("send a ticket: Authorization: Bearer <ticket>")
    return tickets.verify(token.strip(), door.settings)
