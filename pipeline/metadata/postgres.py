"""The PostgreSQL metadata store (``postgresql://...``), through psycopg 3.

Migrations are the numbered SQL files in ``migrations/``, applied in order under a
transaction-scoped advisory lock by ``photopipe db upgrade`` (and recorded in
``schema_migrations``). Photo ids come from the ``next_photo_id()`` function, the id column's
default. Every transaction sets its own statement and lock timeouts (``SET LOCAL``: no session
state, so a transaction-pooling pgbouncer may sit in between, and no prepared statements).

psycopg's errors are translated here, once (:func:`translate`): authentication and a missing
database, schema or table are :class:`DatabaseRejected` (permanent, the message says what to
fix); a lost connection, a server shutting down or starting, timeouts, serialization failures
and deadlocks are :class:`DatabaseUnavailable` (transient; the connection is re-opened on the
next call); anything else is a bug of ours, :class:`InternalError`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from pipeline.errors import (
    DatabaseRejected,
    DatabaseUnavailable,
    InternalError,
    PhotopipeError,
)
from pipeline.metadata.sql import Cursor, SqlMetadata

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK = 0x70686F746F  # advisory lock key for migrations ("photo")
# Server messages of a refused connection (psycopg gives connection errors no SQLSTATE).
_REFUSALS = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
             "authentication failed", "permission denied")
# SQLSTATE classes that mean photopipe is set up wrong: 28 authorization, 3D catalog (no such
# database), 3F schema, 42 undefined table/column/function (migrations not applied).
_REJECTED_CLASSES = ("28", "3D", "3F", "42")
_TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError,
              pg_errors.SerializationFailure, pg_errors.DeadlockDetected)


def translate(exc: psycopg.Error) -> PhotopipeError:
    """psycopg's exception as photopipe's error."""
    state = exc.sqlstate or ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if state[:2] in _REJECTED_CLASSES or (
            not state and isinstance(exc, psycopg.OperationalError)
            and any(refusal in str(exc) for refusal in _REFUSALS)):
        hint = " (run `photopipe db upgrade`)" if state[:2] == "42" else \
            " (check PHOTOPIPE_DATABASE_URL)"
        return DatabaseRejected(f"PostgreSQL refused photopipe: {text}{hint}")
    if isinstance(exc, _TRANSIENT):
        return DatabaseUnavailable(f"PostgreSQL: {type(exc).__name__}: {text}")
    return InternalError(f"PostgreSQL: {type(exc).__name__}: {text}")


class PostgresMetadata(SqlMetadata):
    """Photo and rendition rows in PostgreSQL."""

    def __init__(self, url: str, *, connect_timeout: int = 10,
                 statement_timeout_ms: int = 30_000, lock_timeout_ms: int = 10_000) -> None:
        self.url, self.connect_timeout = url, connect_timeout
        # A client that stalls inside a transaction (a frozen worker) must not hold its row
        # locks for long either: the server ends such a transaction.
        self._timeouts = (f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "
                          f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}; "
                          "SET LOCAL idle_in_transaction_session_timeout = "
                          f"{2 * int(statement_timeout_ms)}")
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        # One connection, so one transaction at a time: threads sharing the store take turns.
        self._lock = threading.RLock()

    def upgrade(self) -> int:
        """Apply every migration not yet applied; return the schema version."""
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                        "(version integer PRIMARY KEY, applied_at timestamptz DEFAULT now())")
            cur.execute("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
            current = int(cur.fetchone()["v"])
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
            return int(cur.fetchone()["id"])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(self._timeouts.encode())
                    yield cur
            except psycopg.Error as exc:
                if isinstance(exc, _TRANSIENT) or conn_broken(self._conn):
                    self.close()
                raise translate(exc) from exc

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                         connect_timeout=self.connect_timeout,
                                         prepare_threshold=None)
        return self._conn


def conn_broken(conn: psycopg.Connection[Any] | None) -> bool:
    """Whether ``conn`` can no longer be used (closed, or its socket is gone)."""
    return conn is None or conn.closed or conn.broken
