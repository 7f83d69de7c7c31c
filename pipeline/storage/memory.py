"""An in-memory object store: the fake for tests and for the web tier's own tests."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence

from pipeline.errors import ObjectNotFound
from pipeline.storage import check_key, check_part, check_size, joined, tag


class MemoryStore:
    """Objects in a dict, with their content types; safe to share between threads."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, str]] = {}
        self._parts: dict[tuple[str, str], tuple[str, dict[int, bytes]]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._lock:
            self._objects[check_key(key)] = (bytes(data), content_type)

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        with self._lock:
            try:
                data = self._objects[key][0]
            except KeyError:
                raise ObjectNotFound(f"no object at {key!r}") from None
        check_size(key, len(data), max_bytes)
        return data

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix))
        return iter(keys)

    def content_type(self, key: str) -> str:
        """The content type ``key`` was stored with (for tests)."""
        with self._lock:
            return self._objects[key][1]

    def url(self, key: str, seconds: int) -> str | None:
        """None: this store has no URLs of its own."""
        check_key(key)
        return None

    def begin_parts(self, key: str, content_type: str) -> str:
        upload = uuid.uuid4().hex
        with self._lock:
            self._parts[(check_key(key), upload)] = (content_type, {})
        return upload

    def put_part(self, key: str, upload: str, number: int, data: bytes) -> str:
        check_part(number)
        with self._lock:
            if (key, upload) not in self._parts:
                raise ObjectNotFound(f"no upload {upload!r} of {key!r}")
            self._parts[(key, upload)][1][number] = bytes(data)
        return tag(data)

    def join_parts(self, key: str, upload: str, parts: Sequence[tuple[int, str]]) -> None:
        with self._lock:
            if (key, upload) not in self._parts:
                raise ObjectNotFound(f"no upload {upload!r} of {key!r}")
            content_type, stored = self._parts[(key, upload)]
            data = joined(key, [(n, stored.get(n), t) for n, t in parts])
            self._objects[key] = (data, content_type)
            del self._parts[(key, upload)]

    def drop_parts(self, key: str, upload: str) -> None:
        with self._lock:
            self._parts.pop((key, upload), None)

