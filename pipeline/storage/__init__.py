"""Object storage: the port, and :func:`open_store` to pick an implementation from a URL.

Keys are ``/``-separated relative paths (``photos/<id>/w1080.jpg``). Every implementation passes
the same contract tests (tests/storage/test_contract.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Protocol
from urllib.parse import urlsplit

from pipeline.errors import StorageRejected, TooLarge
from pipeline.settings import Settings


class ObjectStore(Protocol):
    """Where originals and renditions live."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there (atomically)."""

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The bytes under ``key``. Raises ObjectNotFound when there are none, and TooLarge
        (having read at most ``max_bytes + 1`` bytes) when the object is larger than
        ``max_bytes``."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    def delete_many(self, keys: Sequence[str]) -> None:
        """Remove every key of ``keys`` (missing ones are not an error), in as few requests as
        the store allows."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with ``prefix``, in sorted order."""

    def url(self, key: str, seconds: int) -> str | None:
        """A URL that fetches ``key``'s object for the next ``seconds`` without credentials
        (S3: a presigned GET), built without a request; None where the store has no URLs of
        its own (the HTTP face then serves the object itself)."""

    # -- multipart: an object written in parts, by any process (resumable uploads) ----------

    def begin_parts(self, key: str, content_type: str) -> str:
        """Start writing the object ``key`` in parts; returns the id the parts go under."""

    def put_part(self, key: str, upload: str, number: int, data: bytes) -> str:
        """Store part ``number`` (1 to 10,000) of ``upload``, replacing one of that number;
        every part but the last must be at least :data:`PART_BYTES`. Returns the part's tag.
        (A part for an upload already joined or dropped is an error, of a kind that differs
        between S3 servers.)"""

    def join_parts(self, key: str, upload: str, parts: Sequence[tuple[int, str]]) -> None:
        """Make ``key``'s object of ``parts`` ((number, tag), ascending), replacing what was
        there, and end the upload. Raises StorageRejected when a part's tag is not what is
        stored, or a part but the last is too small."""

    def drop_parts(self, key: str, upload: str) -> None:
        """Abandon the upload and remove its parts; an unknown upload is not an error."""


# S3's smallest part but the last (5 MiB); every store keeps the same rule, so code that writes
# parts is tested against it everywhere.
PART_BYTES = 5 * 1024 * 1024


def check_size(key: str, size: int, max_bytes: int | None) -> None:
    """Raise TooLarge when an object of ``size`` bytes is over ``max_bytes``."""
    if max_bytes is not None and size > max_bytes:
        raise TooLarge(f"the original at {key!r} is over the limit of {max_bytes} bytes")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ValueError.

    Keys are built by photopipe, never taken from users, but a local directory store must still
    refuse anything that could escape its root.
    """
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


def check_part(number: int) -> None:
    """Raise ValueError for a part number S3 would refuse."""
    if not 1 <= number <= 10_000:
        raise ValueError(f"part numbers are 1 to 10,000, not {number}")


def tag(data: bytes) -> str:
    """A part's tag as S3 gives it: the MD5 of its bytes, in hex."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def joined(key: str, parts: Sequence[tuple[int, bytes | None, str]]) -> bytes:
    """The object of ``parts`` (each its number, its stored bytes or None, and the tag asked
    for), as S3 checks them: numbers ascending, every tag matches, every part but the last at
    least PART_BYTES.

    Raises:
        StorageRejected: a part missing, changed since, too small or out of order.
    """
    numbers = [number for number, _, _ in parts]
    if not parts or numbers != sorted(set(numbers)):
        raise StorageRejected(f"the parts of {key!r} are not in ascending order")
    for index, (number, data, wanted) in enumerate(parts, start=1):
        if data is None or tag(data) != wanted:
            raise StorageRejected(f"part {number} of {key!r} is not the one named")
        if index < len(parts) and len(data) < PART_BYTES:
            raise StorageRejected(f"part {number} of {key!r} is under {PART_BYTES} bytes")
    return b"".join(data or b"" for _, data, _ in parts)


def open_store(settings: Settings) -> ObjectStore:
    """The object store ``settings.storage_url`` names: ``file:///dir``, ``s3://bucket/prefix``
    (with ``settings.s3_endpoint_url``) or ``memory://``.

    Raises:
        ValueError: the URL's scheme is not one photopipe knows.
    """
    url = urlsplit(settings.storage_url)
    if url.scheme == "file":
        from pipeline.storage.local import LocalStore

        return LocalStore(url.path)
    if url.scheme == "s3":
        from pipeline.storage.s3 import S3Store, client

        return S3Store(client(settings.s3_endpoint_url), url.netloc, url.path)
    if url.scheme == "memory":
        from pipeline.storage.memory import MemoryStore

        return MemoryStore()
    raise ValueError(f"unsupported PHOTOPIPE_STORAGE_URL scheme {url.scheme!r}")
