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
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from pipeline.errors import (
    DatabaseRejected,
    DatabaseUnavailable,
    InternalError,
    PhotopipeError,
)
from pipeline.metadata.port import Server, Standby
from pipeline.metadata.sql import Cursor, SqlMetadata

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK = 0x70686F746F  # advisory lock key for migrations ("photo")
# Server messages of a refused connection (psycopg gives connection errors no SQLSTATE).
_REFUSALS = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
             "authentication failed", "permission denied")
# SQLSTATE classes that mean photopipe is set up wrong: 28 authorization, 3D catalog (no such
# database), 3F schema, 42 undefined table/column/function (migrations not applied).
_REJECTED_CLASSES = ("28", "3D", "3F", "42")
# A write on a server that has become a standby (25006, read-only transaction) is transient
# too: the connection is dropped, and the next one (a multi-host URL with
# target_session_attrs=read-write) finds the new primary.
_TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError,
              pg_errors.SerializationFailure, pg_errors.DeadlockDetected,
              pg_errors.ReadOnlySqlTransaction)


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


class Link:
    """One connection to one PostgreSQL database, opened on first use and again after it
    broke; the stores of every logical shard on that database share it, taking turns."""

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        self.url, self.connect_timeout = url, connect_timeout
        self.conn: psycopg.Connection[dict[str, Any]] | None = None
        self.lock = threading.RLock()

    def connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                        connect_timeout=self.connect_timeout,
                                        prepare_threshold=None)
        return self.conn

    def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None


class PostgresMetadata(SqlMetadata):
    """Photo and rendition rows in PostgreSQL: the database's own search path, or one logical
    shard's schema (``schema``, set by ``SET LOCAL`` in every transaction; see
    :mod:`pipeline.metadata.shards`)."""

    def __init__(self, url: str, *, connect_timeout: int = 10,
                 statement_timeout_ms: int = 30_000, lock_timeout_ms: int = 10_000,
                 schema: str | None = None, shard: int = 0, link: Link | None = None) -> None:
        self.url, self.schema, self.shard = url, schema, shard
        self.link = link or Link(url, connect_timeout=connect_timeout)
        # A client that stalls inside a transaction (a frozen worker) must not hold its row
        # locks for long either: the server ends such a transaction.
        self._timeouts = (f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "
                          f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}; "
                          "SET LOCAL idle_in_transaction_session_timeout = "
                          f"{2 * int(statement_timeout_ms)}")
        if schema is not None:
            self._timeouts += f"; SET LOCAL search_path = {_identifier(schema)}"
        # A shard's transactions first read its fence (shard_state), waiting while a move
        # holds it: a moved shard answers ShardMoved, and the caller re-reads the shard map.
        # A plain read: its ACCESS SHARE lock on the table, held to the transaction's end, is
        # what a move's ACCESS EXCLUSIVE waits for and holds back. (A row lock, FOR SHARE,
        # would make every transaction a writer: a transaction id, WAL, and a COMMIT that
        # waits for the synchronous standby, reads included.)
        self._fence = "SELECT moved FROM shard_state" if schema else None

    def upgrade(self) -> int:
        """Apply every migration not yet applied; return the schema version. A shard's schema
        is created first, and gets its fence and its own ``next_id()`` after the migrations."""
        with self._transaction(fenced=False) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            if self.schema is not None:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_identifier(self.schema)}")
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                        "(version integer PRIMARY KEY, applied_at timestamptz DEFAULT now())")
            cur.execute("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
            current = int(cur.fetchone()["v"])
            files = sorted(MIGRATIONS.glob("*.sql"))
            for path in files[current:]:
                cur.execute(path.read_text())
                cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                            (int(path.name.split("_")[0]),))
            if self.schema is not None:
                cur.execute(_SHARD_SETUP.format(schema=_identifier(self.schema),
                                                shard=int(self.shard)))
        return len(files)

    def allocate_id(self, user_id: int | None = None) -> int:
        """A new photo id from ``next_photo_id()`` (a shard's: ``next_id()``), durable before
        it is returned. A sequence writes WAL once per 32 values, covering them ahead, and
        only that call's COMMIT waits for the standby; the 31 after it commit at once
        (nothing written, nothing to wait for) though the record covering them may still be
        on its way. So the transaction writes a (transactional, empty) WAL message: its COMMIT
        then waits, with a synchronous standby, until the standby has everything before it,
        and after a failover the new primary's sequence can never serve this value again."""
        with self._transaction() as cur:
            cur.execute(("SELECT next_id() AS id" if self.schema else
                         "SELECT next_photo_id() AS id") +
                        ", pg_logical_emit_message(true, 'photopipe.id', '')")
            return int(cur.fetchone()["id"])

    def replication(self) -> list[Server]:
        """This database's server: the primary that answered and its standbys as it sees
        them (``pg_stat_replication``; its lag columns need a superuser or ``pg_monitor``)."""
        with self._transaction(fenced=False) as cur:
            cur.execute(_REPLICATION)
            row = cur.fetchone()
        standbys = tuple(Standby(s["name"], s["address"], s["state"], s["sync_state"],
                                 None if s["lag_bytes"] is None else int(s["lag_bytes"]),
                                 s["replay_lag"]) for s in row["standbys"])
        return [Server(_where(self.url), f"{row['host'] or 'local'}:{row['port']}", standbys,
                       len(str(conninfo_to_dict(self.url).get("host") or "").split(",")) > 1)]

    def close(self) -> None:
        self.link.close()

    def transaction(self, *, fenced: bool = True) -> AbstractContextManager[Cursor]:
        """A transaction on this store's database and schema, with its timeouts (and, for a
        shard, its fence unless ``fenced`` is False), for the shard tools' own statements."""
        return self._transaction(fenced=fenced)

    @contextmanager
    def _transaction(self, *, fenced: bool = True) -> Iterator[Cursor]:
        link = self.link
        with link.lock:
            try:
                conn = link.connection()
                with conn.transaction(), conn.cursor() as cur:
                    if fenced and self._fence is not None:  # in the same round trip
                        cur.execute(f"{self._timeouts}; {self._fence}".encode())
                        while cur.description is None and cur.nextset():
                            pass  # past the SET LOCALs' results, to the fence's row
                        fence = cur.fetchone()
                        if fence is None or fence["moved"]:
                            raise ShardMoved(f"logical shard {self.shard} has moved from "
                                             f"{_where(link.url)}")
                    else:
                        cur.execute(self._timeouts.encode())
                    yield cur
            except psycopg.Error as exc:
                if isinstance(exc, _TRANSIENT) or conn_broken(link.conn):
                    link.close()
                error = translate(exc)
                if self.schema is not None and (exc.sqlstate or "")[:2] in ("3F", "42"):
                    # a shard's schema gone from here: moved away (the map will say where)
                    error = ShardMoved(f"logical shard {self.shard} is not on "
                                       f"{_where(link.url)}: {error}")
                raise error from exc


# A COMMIT on a primary with a synchronous standby waits until the standby has the commit. A
# cancel during that wait would not fail the commit: the server would end the wait and report
# success for a transaction only the primary has (a failover then loses it). The statement
# timeout set above is no such cancel: PostgreSQL disables it before committing
# (tests/replicas/test_commits.py holds it to that), and photopipe sends no cancel.


_REPLICATION = """
SELECT host(inet_server_addr()) AS host, inet_server_port() AS port, (
    SELECT coalesce(json_agg(json_build_object(
        'name', application_name, 'address', host(client_addr), 'state', state,
        'sync_state', sync_state,
        'lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),
        'replay_lag', extract(epoch FROM replay_lag)) ORDER BY application_name), '[]')
    FROM pg_stat_replication) AS standbys"""


class ShardMoved(DatabaseUnavailable):
    """The logical shard is not (or no longer) on this database: re-read the shard map and
    try again where it says (transient: nothing about the job is wrong)."""


# After a shard's migrations: its fence, and its own id function, the id column's default.
_SHARD_SETUP = """
CREATE TABLE IF NOT EXISTS shard_state (moved boolean NOT NULL DEFAULT false);
INSERT INTO shard_state SELECT WHERE NOT EXISTS (SELECT FROM shard_state);
CREATE OR REPLACE FUNCTION next_id() RETURNS bigint LANGUAGE sql
    AS 'SELECT {schema}.next_photo_id({shard})';
ALTER TABLE photos ALTER COLUMN id SET DEFAULT next_id();
"""


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a schema name: {name!r}")
    return f'"{name}"'


def _where(url: str) -> str:
    """A database URL without its credentials, for messages."""
    return url.rsplit("@", 1)[-1]


def conn_broken(conn: psycopg.Connection[Any] | None) -> bool:
    """Whether ``conn`` can no longer be used (closed, or its socket is gone)."""
    return conn is None or conn.closed or conn.broken
