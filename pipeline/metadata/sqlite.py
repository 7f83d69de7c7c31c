"""The SQLite metadata store: the embedded default (``sqlite:///path``)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.decode import SourceInfo
from pipeline.errors import DatabaseUnavailable, PhotoNotFound
from pipeline.metadata import STATUSES, NewPhoto, PhotoRow, RenditionRow, photo_from_row

# Each entry upgrades the schema by one version; PRAGMA user_version records how far it got.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE photos (
        id              INTEGER PRIMARY KEY,
        status          TEXT NOT NULL
                        CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
        source_key      TEXT NOT NULL,
        ladder          TEXT NOT NULL,
        filter          TEXT,
        strength        REAL NOT NULL,
        user_id         INTEGER,
        attempts        INTEGER NOT NULL DEFAULT 0,
        source_format   TEXT,
        source_width    INTEGER,
        source_height   INTEGER,
        source_bytes    INTEGER,
        source_frames   INTEGER,
        orientation     INTEGER,
        error_code      TEXT,
        error_message   TEXT,
        created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX photos_status ON photos (status);
    CREATE TABLE renditions (
        photo_id    INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        format      TEXT NOT NULL,
        object_key  TEXT NOT NULL UNIQUE,
        width       INTEGER NOT NULL,
        height      INTEGER NOT NULL,
        bytes       INTEGER NOT NULL,
        position    INTEGER NOT NULL,
        PRIMARY KEY (photo_id, name, format)
    );
    """,
    "CREATE TABLE photo_id_seq (n INTEGER PRIMARY KEY AUTOINCREMENT)",
)
EPOCH_MS = 1735689600000  # 2025-01-01T00:00:00Z, as in the PostgreSQL function
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


class SqliteMetadata:
    """Photo and rendition rows in one SQLite file, migrated on open."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self.upgrade()

    def upgrade(self) -> int:
        """Apply the migrations not yet applied; return the schema version."""
        with self._transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
        return len(MIGRATIONS)

    def allocate_id(self, shard_id: int = 0) -> int:
        """Instagram's id scheme, as ``next_photo_id()`` computes it in PostgreSQL."""
        with self._transaction() as db:
            seq = db.execute("INSERT INTO photo_id_seq DEFAULT VALUES").lastrowid or 0
            db.execute("DELETE FROM photo_id_seq WHERE n < ?", (seq,))
        now_ms = time.time_ns() // 1_000_000
        return ((now_ms - EPOCH_MS) << 23) | (shard_id << 10) | (seq % 1024)

    def create(self, photo: NewPhoto) -> None:
        with self._transaction() as db:
            db.execute(
                f"""INSERT INTO photos (id, status, source_key, ladder, filter, strength, user_id)
                    VALUES (?, 'queued', ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET status = 'queued',
                        source_key = excluded.source_key, ladder = excluded.ladder,
                        filter = excluded.filter, strength = excluded.strength,
                        user_id = excluded.user_id, error_code = NULL, error_message = NULL,
                        updated_at = {_NOW}""",
                (photo.id, photo.source_key, photo.ladder, photo.filter, photo.strength,
                 photo.user_id))

    def start(self, photo_id: int) -> PhotoRow:
        with self._transaction() as db:
            updated = db.execute(
                f"""UPDATE photos SET status = 'processing', attempts = attempts + 1,
                    updated_at = {_NOW} WHERE id = ?""", (photo_id,)).rowcount
        row = self.get(photo_id)
        if not updated or row is None:
            raise PhotoNotFound(f"no photo {photo_id}")
        return row

    def finish(self, photo_id: int, source: SourceInfo,
               renditions: Sequence[RenditionRow]) -> None:
        with self._transaction() as db:
            db.execute(
                f"""UPDATE photos SET status = 'ready', source_format = ?, source_width = ?,
                    source_height = ?, source_bytes = ?, source_frames = ?, orientation = ?,
                    error_code = NULL, error_message = NULL, updated_at = {_NOW}
                    WHERE id = ?""",
                (source.format, source.width, source.height, source.bytes, source.frames,
                 source.orientation, photo_id))
            db.execute("DELETE FROM renditions WHERE photo_id = ?", (photo_id,))
            db.executemany(
                """INSERT INTO renditions (photo_id, name, format, object_key, width, height,
                    bytes, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [(photo_id, r.name, r.format, r.key, r.width, r.height, r.bytes, position)
                 for position, r in enumerate(renditions)])

    def fail(self, photo_id: int, code: str, message: str) -> None:
        with self._transaction() as db:
            db.execute(
                f"""UPDATE photos SET status = 'failed', error_code = ?, error_message = ?,
                    updated_at = {_NOW} WHERE id = ?""", (code, message, photo_id))
            db.execute("DELETE FROM renditions WHERE photo_id = ?", (photo_id,))

    def get(self, photo_id: int) -> PhotoRow | None:
        row = self._query("SELECT * FROM photos WHERE id = ?", (photo_id,))
        return photo_from_row(dict(row[0])) if row else None

    def renditions(self, photo_id: int) -> list[RenditionRow]:
        rows = self._query(
            """SELECT name, format, object_key, width, height, bytes FROM renditions
               WHERE photo_id = ? ORDER BY position""", (photo_id,))
        return [RenditionRow(r["name"], r["format"], r["object_key"], r["width"], r["height"],
                             r["bytes"]) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT status, count(*) AS n FROM photos GROUP BY status", ())
        found = {r["status"]: r["n"] for r in rows}
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def close(self) -> None:
        self._db.close()

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(f"SQLite: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(f"SQLite: {exc}") from exc
