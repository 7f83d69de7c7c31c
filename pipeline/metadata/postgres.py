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

import copy
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
from pipeline.metadata.port import Reader, Server, Standby
from pipeline.metadata.reads import Freshness, Role, answered
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


def standby_link(url: str, *, connect_timeout: int = 10) -> Link | None:
    """A connection for reads a standby may serve, when ``url`` lists several hosts: the
    same URL asking for a standby first (``target_session_attrs=prefer-standby``; libpq
    falls back to the primary when no standby answers). None for a single host."""
    hosts = str(conninfo_to_dict(url).get("host") or "")
    if "," not in hosts:
        return None
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "target_session_attrs"]
    query.append(("target_session_attrs", "prefer-standby"))
    return Link(urlunsplit(parts._replace(query=urlencode(query))),
                connect_timeout=connect_timeout)


class _Behind(Exception):
    """The standby is not fresh enough for the read (never leaves this module)."""


class PostgresMetadata(SqlMetadata):
    """Photo and rendition rows in PostgreSQL: the database's own search path, or one logical
    shard's schema (``schema``, set by ``SET LOCAL`` in every transaction; see
    :mod:`pipeline.metadata.shards`).

    With ``standby_max_lag`` (reads from standbys on), :meth:`reader` sends its reads to
    ``standby`` (by default, :func:`standby_link` of ``url``) when fresh enough."""

    def __init__(self, url: str, *, connect_timeout: int = 10,
                 statement_timeout_ms: int = 30_000, lock_timeout_ms: int = 10_000,
                 schema: str | None = None, shard: int = 0, link: Link | None = None,
                 standby_max_lag: float | None = None, standby: Link | None = None) -> None:
        self.url, self.schema, self.shard = url, schema, shard
        self.link = link or Link(url, connect_timeout=connect_timeout)
        self.standby_max_lag = standby_max_lag
        self.standby = standby if standby is not None or standby_max_lag is None else \
            standby_link(url, connect_timeout=connect_timeout)
        self._reading: Freshness | None = None  # set on the views reader() returns
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

    def reader(self, *, after: str | None = None) -> Reader:
        return self.reading(after)

    def reading(self, after: str | None) -> PostgresMetadata:
        """:meth:`reader` as this class (the sharded store's views)."""
        if self.standby_max_lag is None:
            return self
        view = copy.copy(self)
        view._reading = Freshness(self.standby_max_lag, after)
        return view

    def position(self, photo_id: int) -> str | None:
        if self.standby_max_lag is None:
            return None
        with self._transaction(fenced=False) as cur:
            cur.execute("SELECT pg_current_wal_lsn()::text AS lsn")
            return str(cur.fetchone()["lsn"])

    def close(self) -> None:
        self.link.close()
        if self.standby is not None:
            self.standby.close()

    def transaction(self, *, fenced: bool = True) -> AbstractContextManager[Cursor]:
        """A transaction on this store's database and schema, with its timeouts (and, for a
        shard, its fence unless ``fenced`` is False), for the shard tools' own statements."""
        return self._transaction(fenced=fenced)

    @contextmanager
    def _transaction(self, *, fenced: bool = True) -> Iterator[Cursor]:
        if self._reading is None:
            with self._on(self.link, fenced) as (cur, _):
                yield cur
            return
        with self._read(self._reading, fenced) as cur:
            yield cur

    @contextmanager
    def _read(self, freshness: Freshness, fenced: bool) -> Iterator[Cursor]:
        """A read's transaction on the standby link when the standby there is fresh enough,
        else on the primary's; the role that answered is counted once the read is done. A
        standby that cannot be reached sends the read to the primary too."""
        entered = False
        if self.standby is not None:
            try:
                with self._on(self.standby, fenced, freshness.check()) as (cur, checked):
                    role: Role = "standby" if checked["standby"] else "primary"
                    entered = True
                    yield cur
                answered(role)
                return
            except (_Behind, DatabaseUnavailable) as exc:
                if entered or isinstance(exc, ShardMoved):
                    raise
        with self._on(self.link, fenced) as (cur, _):
            yield cur
        answered("primary")

    @contextmanager
    def _on(self, link: Link, fenced: bool,
            check: str | None = None) -> Iterator[tuple[Cursor, dict[str, Any]]]:
        """A transaction on ``link`` with this store's timeouts, its fence (``fenced``, a
        shard), and ``check`` (a freshness check: its row is yielded with the cursor, and not
        fresh raises _Behind), all in the first round trip."""
        first = self._timeouts
        if fenced and self._fence is not None:
            first += f"; {self._fence}"
        if check is not None:
            first += f"; {check}"
        with link.lock:
            try:
                conn = link.connection()
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(first.encode())
                    if fenced and self._fence is not None:
                        self._pass_fence(cur, link)
                    checked: dict[str, Any] = {}
                    if check is not None:
                        _to_result(cur)
                        checked = cur.fetchone() or {}
                        if not checked.get("fresh"):
                            raise _Behind
                    yield cur, checked
            except psycopg.Error as exc:
                if isinstance(exc, _TRANSIENT) or conn_broken(link.conn):
                    link.close()
                error = translate(exc)
                if self.schema is not None and (exc.sqlstate or "")[:2] in ("3F", "42"):
                    # a shard's schema gone from here: moved away (the map will say where)
                    error = ShardMoved(f"logical shard {self.shard} is not on "
                                       f"{_where(link.url)}: {error}")
                raise error from exc

    def _pass_fence(self, cur: Any, link: Link) -> None:
        """Past the SET LOCALs' results to the fence's row. Raises ShardMoved."""
        _to_result(cur)
        fence = cur.fetchone()
        if fence is None or fence["moved"]:
            raise ShardMoved(f"logical shard {self.shard} has moved from {_where(link.url)}")
        cur.nextset()


def _to_result(cur: Any) -> None:
    """Move ``cur`` to the next result that has rows (past SET's empty results)."""
    while cur.description is None and cur.nextset():
        pass


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
