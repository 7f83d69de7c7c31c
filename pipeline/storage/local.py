"""A local-directory object store: the embedded default (``file:///dir``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.errors import ObjectNotFound, StorageUnavailable
from pipeline.storage import check_key, check_size


class LocalStore:
    """Objects as files below ``root``; writes are atomic (temporary file, then rename).

    Content types are not kept: they follow from the key's extension when files are served.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file that holds ``key``."""
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {target}: {exc.strerror}") from exc

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        try:
            with self.path(key).open("rb") as handle:
                check_size(key, os.fstat(handle.fileno()).st_size, max_bytes)
                data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
            check_size(key, len(data), max_bytes)  # it grew since the stat
            return data
        except FileNotFoundError:
            raise ObjectNotFound(f"no object at {key!r}") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key!r}: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the file, and the folders above it that it leaves empty (below the root)."""
        target = self.path(key)
        try:
            target.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {key!r}: {exc.strerror}") from exc
        for folder in target.parents:
            if folder == self.root or self.root not in folder.parents:
                break
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): the folders above are in use
                break

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return iter(())
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                if p.is_file() and not p.name.startswith(".tmp-"))
        return iter(sorted(k for k in keys if k.startswith(prefix)))

    def url(self, key: str, seconds: int) -> str | None:
        """None: this store has no URLs of its own."""
        check_key(key)
        return None
