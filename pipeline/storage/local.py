"""A local-directory object store: the embedded default (``file:///dir``)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.errors import ObjectNotFound, StorageUnavailable
from pipeline.storage import check_key, check_part, check_size, joined, tag

PARTS = ".parts"  # below the root: a folder per multipart upload, a file per part


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
        keys = (k for k in keys if not k.startswith(PARTS + "/"))
        return iter(sorted(k for k in keys if k.startswith(prefix)))

    def url(self, key: str, seconds: int) -> str | None:
        """None: this store has no URLs of its own."""
        check_key(key)
        return None

    def begin_parts(self, key: str, content_type: str) -> str:
        check_key(key)
        upload = uuid.uuid4().hex
        try:
            (self.root / PARTS / upload).mkdir(parents=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot start parts of {key!r}: {exc.strerror}") from exc
        return upload

    def put_part(self, key: str, upload: str, number: int, data: bytes) -> str:
        check_part(number)
        folder = self._parts(key, upload)
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, folder / str(number))
        except OSError as exc:
            raise StorageUnavailable(f"cannot write a part of {key!r}: {exc.strerror}") from exc
        return tag(data)

    def join_parts(self, key: str, upload: str, parts: Sequence[tuple[int, str]]) -> None:
        folder = self._parts(key, upload)
        stored = [(n, self._part(folder / str(n)), t) for n, t in parts]
        self.put(key, joined(key, stored), "application/octet-stream")
        self.drop_parts(key, upload)

    def drop_parts(self, key: str, upload: str) -> None:
        check_key(key)
        shutil.rmtree(self.root / PARTS / check_key(upload), ignore_errors=True)

    def _parts(self, key: str, upload: str) -> Path:
        check_key(key)
        folder = self.root / PARTS / check_key(upload)
        if not folder.is_dir():
            raise ObjectNotFound(f"no upload {upload!r} of {key!r}")
        return folder

    @staticmethod
    def _part(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}: {exc.strerror}") from exc
