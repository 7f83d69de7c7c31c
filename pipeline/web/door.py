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
from pipeline.metadata import MetadataStore, PhotoRow, Reader, RenditionRow, reads
from pipeline.producer import Publisher, Upload, delete, resubmit, submit
from pipeline.settings import Settings
from pipeline.storage import ObjectStore
from pipeline.uploads import Uploads
from pipeline.web import tickets
from pipeline.web.errors import BadRequest, RateLimited

READ_AFTER = "Photopipe-Read-After"  # a write's position, which reads must have replayed


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

    def photo(self, photo_id: int, after: str | None = None
              ) -> tuple[PhotoRow | None, list[RenditionRow]]:
        """The photo's row and renditions, from a standby where reads may go to one (having
        replayed ``after``, a position a write of the client's returned). A photo the standby
        does not have is looked for on the primary: it may be new."""
        db = self.db()
        reads = db.reader(after=after)
        row = reads.get(photo_id)
        if row is None and reads is not db:
            reads = db
            row = reads.get(photo_id)
        return row, _renditions(reads, row)

    def written(self, photo_id: int) -> str | None:
        """Where the photo's database has written up to, after a write of the request: a
        read given it sees the write (None: every read does)."""
        return self.db().position(photo_id)

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

    def listing(self, user_id: int, before: int | None, limit: int,
                after: str | None = None) -> list[tuple[PhotoRow, list[RenditionRow]]]:
        """A page of the user's photos, from a standby where allowed (see :meth:`photo`)."""
        reads = self.db().reader(after=after)
        return [(row, _renditions(reads, row)) for row in reads.photos_of(user_id, before, limit)]

    def uploads(self) -> Uploads:
        return Uploads(self.store(), self.db(), self.publisher, self.settings)


def read_after(request: Request) -> str | None:
    """The ``Photopipe-Read-After`` header: a position a write's response gave the client,
    which reads must have replayed (read-your-writes when reads go to standbys)."""
    position = request.headers.get(READ_AFTER)
    if position is not None and not reads.valid(position):
        raise BadRequest(f"{READ_AFTER} is a position a write's response gave, like 0/16B3748")
    return position


def written(position: str | None) -> dict[str, str]:
    """The header that tells a client where its write is (none when every read sees it)."""
    return {} if position is None else {READ_AFTER: position}


def _renditions(reads: Reader, row: PhotoRow | None) -> list[RenditionRow]:
    return reads.renditions(row.id) if row is not None and row.status == "ready" else []


def authorise(request: Request, door: Door) -> tickets.Ticket:
    """The request's ticket, verified. Raises Unauthorized."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise tickets.Unauthorized("send a ticket: Authorization: Bearer <ticket>")
    return tickets.verify(token.strip(), door.settings)
