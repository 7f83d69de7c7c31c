"""The SQLite metadata store: the embedded default (``sqlite:///path``).

sqlite3's errors are translated here, once: a busy or locked database and I/O errors are
:class:`DatabaseUnavailable` (transient); a file that cannot be opened or is not a database,
and a missing table, are :class:`DatabaseRejected` (set-up); anything else is a bug of ours,
:class:`InternalError`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import (
    DatabaseRejected,
    DatabaseUnavailable,
    InternalError,
    PhotopipeError,
)
from pipeline.metadata.port import Reader, Server
from pipeline.metadata.sql import Cursor, SqlMetadata
from pipeline.records import EPOCH_MS

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
    """
    ALTER TABLE photos ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE photos ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE photos ADD COLUMN last_error_code TEXT;
    ALTER TABLE photos ADD COLUMN last_error_message TEXT;
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        photo_id    INTEGER NOT NULL,
        generation  INTEGER NOT NULL,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX outbox_photo ON outbox (photo_id);
    """,
    """
    ALTER TABLE photos ADD COLUMN spec TEXT;
    ALTER TABLE photos ADD COLUMN run_id INTEGER;
    CREATE INDEX photos_run ON photos (run_id, status);
    CREATE TABLE reprocess_runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        key         TEXT NOT NULL,
        selection   TEXT NOT NULL,
        changes     TEXT NOT NULL,
        mode        TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('running', 'done', 'cancelled')),
        cursor      INTEGER NOT NULL DEFAULT 0,
        enqueued    INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX reprocess_runs_key ON reprocess_runs (key, state);
    """,
    """
    CREATE TABLE sweep_turns (
        name    TEXT PRIMARY KEY,
        holder  TEXT NOT NULL,
        until   TEXT NOT NULL
    );
    """,
    "CREATE INDEX photos_user ON photos (user_id, id DESC)",
    """
    CREATE TABLE idempotency_keys (
        user_id     INTEGER NOT NULL,
        key         TEXT NOT NULL,
        photo_id    INTEGER NOT NULL,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (user_id, key)
    );
    """,
    """
    CREATE TABLE upload_counts (
        user_id  INTEGER NOT NULL,
        minute   INTEGER NOT NULL,
        n        INTEGER NOT NULL,
        PRIMARY KEY (user_id, minute)
    );
    """,
    """
    CREATE TABLE uploads (
        photo_id  INTEGER PRIMARY KEY,
        user_id   INTEGER NOT NULL,
        expires   REAL NOT NULL,
        version   INTEGER NOT NULL,
        state     TEXT NOT NULL
    );
    CREATE INDEX uploads_expires ON uploads (expires);
    """,
    """
    CREATE TABLE webhooks (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        photo_id    INTEGER NOT NULL,
        user_id     INTEGER,
        generation  INTEGER NOT NULL,
        event       TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        next_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX webhooks_due ON webhooks (next_at);
    CREATE INDEX webhooks_photo ON webhooks (photo_id, generation, id);
    """,
    "ALTER TABLE photos ADD COLUMN placeholder TEXT",
)
_TRANSIENT_TEXT = ("locked", "busy", "disk i/o error", "database or disk is full")
_REJECTED_TEXT = ("unable to open", "not a database", "no such table", "no such column",
                  "readonly", "read-only")


def translate(exc: sqlite3.Error) -> PhotopipeError:
    """sqlite3's exception as photopipe's error."""
    text = str(exc).lower()
    if any(t in text for t in _TRANSIENT_TEXT):
        return DatabaseUnavailable(f"SQLite: {exc}")
    if any(t in text for t in _REJECTED_TEXT):
        return DatabaseRejected(f"SQLite refused photopipe: {exc} "
                                "(check PHOTOPIPE_DATABASE_URL and PHOTOPIPE_DATA_DIR)")
    return InternalError(f"SQLite: {type(exc).__name__}: {exc}")


class _Cursor:
    """sqlite3's cursor speaking the ``%s`` parameter style the shared statements use."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._cursor = db.cursor()

    def execute(self, sql: Any, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql.replace("%s", "?"), tuple(params))

    def executemany(self, sql: Any, params: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(sql.replace("%s", "?"), [tuple(p) for p in params])

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class SqliteMetadata(SqlMetadata):
    """Photo and rendition rows in one SQLite file, migrated on open."""

    NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    EPOCH = "((julianday({}) - 2440587.5) * 86400.0)"
    LATER = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || %s || ' seconds')"
    LOCK = ""  # BEGIN IMMEDIATE already serialises every writer
    SKIP_LOCKED = ""

    def __init__(self, path: str, *, busy_timeout: float = 30) -> None:
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        except OSError as exc:
            raise DatabaseRejected(f"SQLite: cannot create {path}: {exc.strerror}") from exc
        self.upgrade()

    def upgrade(self) -> int:
        """Apply the migrations not yet applied; return the schema version."""
        with self._transaction() as cur:
            version = int(cur.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    cur.execute(statement)
                cur.execute(f"PRAGMA user_version = {number}")
        return len(MIGRATIONS)

    def allocate_id(self, user_id: int | None = None, shard_id: int = 0) -> int:
        """Instagram's id scheme, as ``next_photo_id()`` computes it in PostgreSQL (one
        logical shard: ``user_id`` places nothing)."""
        with self._transaction() as cur:
            seq = cur.execute("INSERT INTO photo_id_seq DEFAULT VALUES").lastrowid or 0
            cur.execute("DELETE FROM photo_id_seq WHERE n < %s", (seq,))
        now_ms = time.time_ns() // 1_000_000
        return ((now_ms - EPOCH_MS) << 23) | (shard_id << 10) | (seq % 1024)

    def replication(self) -> list[Server]:
        return []  # one file, no server

    def reader(self, *, after: str | None = None) -> Reader:
        return self  # one file: every read sees every write

    def position(self, photo_id: int) -> str | None:
        return None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _Cursor(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise translate(exc) from exc
