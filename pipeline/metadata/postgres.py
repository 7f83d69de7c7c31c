"""The PostgreSQL metadata store (``postgresql://...``), through psycopg 3.

Migrations are the numbered SQL files in ``migrations/``, applied in order under an advisory
lock by ``photopipe db upgrade`` (and recorded in ``schema_migrations``). Photo ids come from the
``next_photo_id()`` function, the id column's default. psycopg's errors are translated at this
edge: a lost connection, a serialization failure or a deadlock is :class:`DatabaseUnavailable`
(transient), and the connection is re-opened on the next call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from pipeline.decode import SourceInfo
from pipeline.errors import DatabaseUnavailable, PhotoNotFound
from pipeline.metadata import STATUSES, NewPhoto, PhotoRow, RenditionRow, photo_from_row

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK = 0x70686F746F  # advisory lock key for migrations ("photo")
_TRANSIENT = (psycopg.OperationalError, pg_errors.SerializationFailure,
              pg_errors.DeadlockDetected, pg_errors.AdminShutdown)


class PostgresMetadata:
    """Photo and rendition rows in PostgreSQL."""

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        self.url, self.connect_timeout = url, connect_timeout
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    def upgrade(self) -> int:
        """Apply every migration not yet applied; return the schema version."""
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                        "(version integer PRIMARY KEY, applied_at timestamptz DEFAULT now())")
            cur.execute("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
            row = cur.fetchone()
            current = int(row["v"]) if row else 0
            files = sorted(MIGRATIONS.glob("*.sql"))
            for path in files[current:]:
                cur.execute(path.read_text())
                cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                            (int(path.name.split("_")[0]),))
        return len(files)

    def allocate_id(self) -> int:
        """A new photo id from ``next_photo_id()``."""
        with self._transaction() as cur:
            cur.execute("SELECT next_photo_id() AS id")
            row = cur.fetchone()
        if row is None:
            raise DatabaseUnavailable("next_photo_id() returned nothing")
        return int(row["id"])

    def create(self, photo: NewPhoto) -> None:
        with self._transaction() as cur:
            cur.execute(
                """INSERT INTO photos (id, status, source_key, ladder, filter, strength, user_id)
                   VALUES (%s, 'queued', %s, %s, %s, %s, %s)
                   ON CONFLICT (id) DO UPDATE SET status = 'queued',
                       source_key = excluded.source_key, ladder = excluded.ladder,
                       filter = excluded.filter, strength = excluded.strength,
                       user_id = excluded.user_id, error_code = NULL, error_message = NULL,
                       updated_at = now()""",
                (photo.id, photo.source_key, photo.ladder, photo.filter, photo.strength,
                 photo.user_id))

    def start(self, photo_id: int) -> PhotoRow:
        with self._transaction() as cur:
            cur.execute("""UPDATE photos SET status = 'processing', attempts = attempts + 1,
                           updated_at = now() WHERE id = %s RETURNING *""", (photo_id,))
            row = cur.fetchone()
        if row is None:
            raise PhotoNotFound(f"no photo {photo_id}")
        return photo_from_row(row)

    def finish(self, photo_id: int, source: SourceInfo,
               renditions: Sequence[RenditionRow]) -> None:
        with self._transaction() as cur:
            cur.execute(
                """UPDATE photos SET status = 'ready', source_format = %s, source_width = %s,
                   source_height = %s, source_bytes = %s, source_frames = %s, orientation = %s,
                   error_code = NULL, error_message = NULL, updated_at = now() WHERE id = %s""",
                (source.format, source.width, source.height, source.bytes, source.frames,
                 source.orientation, photo_id))
            cur.execute("DELETE FROM renditions WHERE photo_id = %s", (photo_id,))
            cur.executemany(
                """INSERT INTO renditions (photo_id, name, format, object_key, width, height,
                   bytes, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                [(photo_id, r.name, r.format, r.key, r.width, r.height, r.bytes, position)
                 for position, r in enumerate(renditions)])

    def fail(self, photo_id: int, code: str, message: str) -> None:
        with self._transaction() as cur:
            cur.execute("""UPDATE photos SET status = 'failed', error_code = %s,
                           error_message = %s, updated_at = now() WHERE id = %s""",
                        (code, message, photo_id))
            cur.execute("DELETE FROM renditions WHERE photo_id = %s", (photo_id,))

    def get(self, photo_id: int) -> PhotoRow | None:
        with self._transaction() as cur:
            cur.execute("SELECT * FROM photos WHERE id = %s", (photo_id,))
            row = cur.fetchone()
        return photo_from_row(row) if row else None

    def renditions(self, photo_id: int) -> list[RenditionRow]:
        with self._transaction() as cur:
            cur.execute("""SELECT name, format, object_key, width, height, bytes
                           FROM renditions WHERE photo_id = %s ORDER BY position""", (photo_id,))
            rows = cur.fetchall()
        return [RenditionRow(r["name"], r["format"], r["object_key"], r["width"], r["height"],
                             r["bytes"]) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._transaction() as cur:
            cur.execute("SELECT status, count(*) AS n FROM photos GROUP BY status")
            found = {r["status"]: int(r["n"]) for r in cur.fetchall()}
        return {status: found.get(status, 0) for status in STATUSES}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except _TRANSIENT as exc:
            self.close()
            raise DatabaseUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                         connect_timeout=self.connect_timeout)
        return self._conn
