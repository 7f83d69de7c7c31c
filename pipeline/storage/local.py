"""A local-directory object store: the embedded default (``file:///dir``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import ObjectNotFound, StorageUnavailable
from pipeline.storage import check_key


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

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"no object at {key!r}") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key!r}: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return iter(())
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                if p.is_file() and not p.name.startswith(".tmp-"))
        return iter(sorted(k for k in keys if k.startswith(prefix)))
