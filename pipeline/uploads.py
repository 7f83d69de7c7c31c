"""Resumable uploads (the tus protocol's model): an upload is created with its length, its
bytes are appended at the offset reached so far, by any number of requests to any process,
and its last byte submits the photo.

Nothing of an upload lives in a process: its state is a row (on its user's shard, under the
photo id it will become, reserved when it is created) that changes only by compare-and-set,
and its bytes go to the object store as they arrive. Chunks under S3's smallest part are
kept as objects of their own (the *tail*) until enough have come to make a part; a photo
smaller than a part is written as one object at its end, a larger one as an S3 multipart
upload straight to the original's key. A request writes to the store only under a short
lease on the row (taken after its body is in memory), so two requests never write the same
part; the lease ends with the compare-and-set that records what it wrote.

A crash between the last byte's record and the submit is finished by the next request that
looks at the upload (a ``HEAD`` or a retried ``PATCH``): submitting is idempotent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from itertools import groupby

from pipeline.core.decode import sniff_start
from pipeline.errors import PhotoNotFound, TooLarge
from pipeline.jobs import Options, original_key
from pipeline.metadata import MetadataStore, UploadRow
from pipeline.producer import Publisher, Upload, retrying, submit
from pipeline.settings import Settings
from pipeline.storage import PART_BYTES, ObjectStore

OCTETS = "application/octet-stream"
WRITE_LEASE = 120.0  # seconds a request may take to write a chunk it holds in memory
SNIFFED = 12  # the first bytes of an upload checked against the decoder's allow-list


class OffsetMismatch(Exception):
    """A chunk sent for an offset the upload is not at (tus: 409)."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"the upload is at byte {offset}")
        self.offset = offset


class UploadBusy(Exception):
    """Another request is writing a chunk of this upload right now (tus: 423)."""


@dataclass(frozen=True)
class State:
    """What a row holds of an upload (as JSON)."""

    length: int
    ladder: str
    filter: str | None
    strength: float
    offset: int = 0
    parts_id: str | None = None  # the store's multipart upload, once the photo needs parts
    parts: tuple[tuple[int, str, int], ...] = ()  # (number, tag, bytes) written so far
    tail: tuple[tuple[str, int], ...] = ()  # (key, bytes) of chunks not yet in a part
    writer: str | None = None  # the request holding the write lease, and until when
    writer_until: float = 0.0
    submitted: bool = False

    @classmethod
    def load(cls, text: str) -> State:
        raw = json.loads(text)
        return cls(**{**raw, "parts": tuple(tuple(p) for p in raw["parts"]),
                      "tail": tuple(tuple(t) for t in raw["tail"])})

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class Progress:
    """What a client learns of its upload."""

    photo_id: int
    length: int
    offset: int
    expires: float
    submitted: bool


@dataclass(frozen=True)
class Uploads:
    """The use case over its ports (a request's, or a tool's)."""

    store: ObjectStore
    db: MetadataStore
    publisher: Publisher | None  # None for the tools that only clean up
    settings: Settings
    clock: Callable[[], float] = time.time
    part_bytes: int = PART_BYTES

    def create(self, user_id: int, length: int, options: Options) -> Progress:
        """A new upload of ``length`` bytes, which will render with ``options``.

        Raises:
            TooLarge: over ``PHOTOPIPE_MAX_BYTES`` (the caller checks its own, lower limits).
            ValueError: an unknown look or ladder, a bad strength.
        """
        Upload(user_id, source_key="-", filter=options.filter, strength=options.strength,
               ladder=options.ladder)  # checks the options now, not at the last byte
        if length > self.settings.limits.max_bytes:
            raise TooLarge(f"{length} bytes is over the limit of "
                           f"{self.settings.limits.max_bytes}")
        photo_id = retrying(lambda: self.db.allocate_id(user_id), self.settings)
        expires = self.clock() + self.settings.upload_expires
        state = State(length, options.ladder, options.filter, options.strength)
        retrying(lambda: self.db.open_upload(UploadRow(photo_id, user_id, expires, 0,
                                                       state.dump())), self.settings)
        return Progress(photo_id, length, 0, expires, False)

    def progress(self, photo_id: int, user_id: int) -> Progress:
        """How far the upload got; a complete one not yet submitted (its request crashed) is
        submitted now. Raises PhotoNotFound (also for another user's, or an expired one)."""
        row, state = self._read(photo_id, user_id)
        if state.offset == state.length and not state.submitted:
            state = self._submit(row, state)
        return _progress(row, state)

    def peek(self, photo_id: int, user_id: int, offset: int) -> Progress:
        """How far the upload got, checked against the ``offset`` a chunk is sent for before
        its body is read. Raises PhotoNotFound, OffsetMismatch."""
        row, state = self._read(photo_id, user_id)
        if state.offset != offset:
            raise OffsetMismatch(state.offset)
        return _progress(row, state)

    def append(self, photo_id: int, user_id: int, offset: int, data: bytes) -> Progress:
        """Write ``data`` at ``offset``; the last byte submits the photo.

        Raises:
            PhotoNotFound: no such upload of this user's (or expired, or abandoned meanwhile).
            OffsetMismatch: the upload is not at ``offset``.
            UploadBusy: another request is writing to it.
            TooLarge: the chunk runs past the upload's length.
            UnsupportedFormat: the upload's first bytes are not a picture photopipe decodes.
        """
        row, state = self._read(photo_id, user_id)
        if state.offset != offset:
            raise OffsetMismatch(state.offset)
        if offset + len(data) > state.length:
            raise TooLarge(f"the chunk runs past the upload's {state.length} bytes")
        if state.offset == state.length:  # an empty chunk at the end: a retried last request
            return self.progress(photo_id, user_id)
        if offset < SNIFFED:
            sniff_start((self._tail_bytes(state) + data)[:SNIFFED])
        row, state = self._lease(row, state)
        written, done = self._write(photo_id, state, data)
        if not retrying(lambda: self.db.put_upload(photo_id, row.version, written.dump()),
                        self.settings):
            self._undo(photo_id, state, written)
            raise PhotoNotFound(f"upload {photo_id} was abandoned or taken over meanwhile")
        self._forget(_keys(state) - _keys(written))
        row = replace(row, version=row.version + 1, state=written.dump())
        if done:
            written = self._submit(row, written)
        return _progress(row, written)

    def abandon(self, photo_id: int, user_id: int) -> None:
        """Remove the upload and what it wrote (tus termination). A submitted upload's photo
        stays (``DELETE /v1/photos/{id}`` removes photos). Raises PhotoNotFound."""
        self._read(photo_id, user_id, expired_too=True)
        row = retrying(lambda: self.db.drop_upload(photo_id), self.settings)
        if row is not None:
            self._clean(row)

    def collect(self, limit: int = 1000) -> int:
        """Remove up to ``limit`` expired uploads, and what they wrote; returns how many."""
        rows = retrying(lambda: self.db.expired_uploads(self.clock(), limit), self.settings)
        for row in rows:
            if retrying(lambda row=row: self.db.drop_upload(row.photo_id),  # type: ignore[misc]
                        self.settings) is not None:
                self._clean(row)
        return len(rows)

    def strays(self, *, delete: bool = True) -> list[str]:
        """Chunks in the store that no upload names (a request that died between writing a
        chunk and recording it; an upload removed while a request was writing), except an
        upload's whose write lease is held now. Removed with ``delete``; returned."""
        found: list[str] = []
        listed = self.store.list("uploads/")
        for folder, keys in groupby(listed, key=lambda k: k.split("/")[1]):
            row = self.db.get_upload(int(folder)) if folder.isdigit() else None
            state = None if row is None else State.load(row.state)
            if state is not None and state.writer is not None and \
                    state.writer_until > self.clock():
                continue
            named = set() if state is None else _keys(state)
            found += [key for key in keys if key not in named]
        if delete:
            self._forget(set(found))
        return found

    # -- inside ------------------------------------------------------------------------------

    def _read(self, photo_id: int, user_id: int, *,
              expired_too: bool = False) -> tuple[UploadRow, State]:
        row = retrying(lambda: self.db.get_upload(photo_id), self.settings)
        if row is None or row.user_id != user_id:
            raise PhotoNotFound(f"no upload {photo_id}")
        state = State.load(row.state)
        if row.expires < self.clock() and not state.submitted and not expired_too:
            raise PhotoNotFound(f"upload {photo_id} expired")
        return row, state

    def _lease(self, row: UploadRow, state: State) -> tuple[UploadRow, State]:
        """Take the upload's write lease, or raise UploadBusy / OffsetMismatch."""
        now = self.clock()
        if state.writer is not None and state.writer_until > now:
            raise UploadBusy("another request is writing to this upload; retry")
        leased = replace(state, writer=uuid.uuid4().hex, writer_until=now + WRITE_LEASE)
        if retrying(lambda: self.db.put_upload(row.photo_id, row.version, leased.dump()),
                    self.settings):
            return replace(row, version=row.version + 1, state=leased.dump()), leased
        _, now_state = self._read(row.photo_id, row.user_id)
        if now_state.offset != state.offset:
            raise OffsetMismatch(now_state.offset)
        raise UploadBusy("another request is writing to this upload; retry")

    def _write(self, photo_id: int, state: State, data: bytes) -> tuple[State, bool]:
        """Put ``data`` in the store: as a tail object, a part, or (the last chunk of a photo
        smaller than a part) the whole original. Returns the new state (lease released) and
        whether the upload is complete."""
        end = state.offset + len(data)
        done = end == state.length
        ended = replace(state, offset=end, writer=None, writer_until=0.0)
        pending = sum(size for _, size in state.tail) + len(data)
        if not done and pending < self.part_bytes:
            key = f"uploads/{photo_id}/{state.offset:012d}-{uuid.uuid4().hex[:8]}"
            self._put(key, data)
            return replace(ended, tail=(*state.tail, (key, len(data)))), done
        buffer = self._tail_bytes(state) + data
        target = original_key(photo_id)
        if done and not state.parts:
            self._put(target, buffer)
            return replace(ended, tail=()), done
        parts_id = state.parts_id or retrying(lambda: self.store.begin_parts(target, OCTETS),
                                              self.settings)
        number = len(state.parts) + 1
        tag = retrying(lambda: self.store.put_part(target, parts_id, number, buffer),
                       self.settings)
        parts = (*state.parts, (number, tag, len(buffer)))
        if done:
            retrying(lambda: self.store.join_parts(target, parts_id,
                                                   [(n, t) for n, t, _ in parts]),
                     self.settings)
        return replace(ended, parts_id=parts_id, parts=parts, tail=()), done

    def _submit(self, row: UploadRow, state: State) -> State:
        """Queue the photo of a complete upload (once, however often it is asked)."""
        if self.publisher is None:
            raise RuntimeError("submitting a photo needs a publisher")
        if retrying(lambda: self.db.get(row.photo_id), self.settings) is None:
            submit(Upload(row.user_id, source_key=original_key(row.photo_id),
                          filter=state.filter, strength=state.strength, ladder=state.ladder,
                          photo_id=row.photo_id),
                   self.store, self.db, self.publisher, self.settings)
        submitted = replace(state, submitted=True)
        retrying(lambda: self.db.put_upload(row.photo_id, row.version, submitted.dump()),
                 self.settings)  # lost to a racing request: it recorded the same
        return submitted

    def _tail_bytes(self, state: State) -> bytes:
        return b"".join(retrying(lambda k=key: self.store.get(k),  # type: ignore[misc]
                                 self.settings) for key, _ in state.tail)

    def _put(self, key: str, data: bytes) -> None:
        retrying(lambda: self.store.put(key, data, OCTETS), self.settings)

    def _undo(self, photo_id: int, before: State, written: State) -> None:
        """Remove what a request wrote whose record was refused (the upload was abandoned)."""
        self._forget(_keys(written) - _keys(before))
        if written.parts_id is not None and before.parts_id is None:
            self.store.drop_parts(original_key(photo_id), written.parts_id)
        if written.offset == written.length:
            self._forget({original_key(photo_id)})

    def _clean(self, row: UploadRow) -> None:
        """What a removed upload wrote: its tail, its parts, an original nothing will render."""
        state = State.load(row.state)
        self._forget(_keys(state))
        if state.parts_id is not None and not state.submitted:
            self.store.drop_parts(original_key(row.photo_id), state.parts_id)
        if state.offset == state.length and not state.submitted and \
                self.db.get(row.photo_id) is None:
            self._forget({original_key(row.photo_id)})

    def _forget(self, keys: set[str]) -> None:
        if keys:
            self.store.delete_many(sorted(keys))


def _keys(state: State) -> set[str]:
    return {key for key, _ in state.tail}


def _progress(row: UploadRow, state: State) -> Progress:
    return Progress(row.photo_id, state.length, state.offset, row.expires, state.submitted)

