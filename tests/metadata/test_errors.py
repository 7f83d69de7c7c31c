"""psycopg's and sqlite3's errors are classified once, at each store: a test per class."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from pipeline.errors import DatabaseRejected, DatabaseUnavailable, InternalError
from pipeline.metadata import NewPhoto
from pipeline.metadata import postgres as pg_store
from pipeline.metadata import sqlite as sqlite_store
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.records import Job
from tests import private, services


def test_postgres_refusals_say_what_to_fix(postgres_url: str) -> None:
    base = services.POSTGRES.rsplit("/", 1)[0]
    for url in (f"{base}/no_such_database", base.replace("postgres@", "nobody@") + "/test"):
        with pytest.raises(DatabaseRejected, match="PHOTOPIPE_DATABASE_URL"):
            PostgresMetadata(url).counts()
    with pytest.raises(DatabaseRejected, match="db upgrade"):
        PostgresMetadata(postgres_url).counts()  # a schema never migrated


def test_postgres_down_is_transient() -> None:
    closed = PostgresMetadata(f"postgresql://postgres@127.0.0.1:{services.free_port()}/x",
                              connect_timeout=2)
    with pytest.raises(DatabaseUnavailable):
        closed.counts()


def test_every_transaction_has_a_lock_and_a_statement_timeout(postgres_url: str) -> None:
    store = PostgresMetadata(postgres_url, lock_timeout_ms=200, statement_timeout_ms=60_000)
    store.upgrade()
    job = store.create(NewPhoto(1, "originals/1"))
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT * FROM photos WHERE id = 1 FOR UPDATE")
        began = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="LockNotAvailable"):
            store.start(job)
        assert time.monotonic() - began < 5
        slow = PostgresMetadata(postgres_url, lock_timeout_ms=60_000, statement_timeout_ms=300)
        with pytest.raises(DatabaseUnavailable, match="QueryCanceled"):
            slow.start(job)
    assert store.start(job).lease == 1  # the lock is gone, and so is the rolled-back attempt
    store.close()


def test_a_restarted_server_is_transient_and_the_store_reconnects() -> None:
    with private.postgres() as server:
        store = PostgresMetadata(server.url)
        store.upgrade()
        store.create(NewPhoto(1, "originals/1"))
        server.restart_immediately()
        with pytest.raises(DatabaseUnavailable):
            store.get(1)
        row = store.get(1)  # the next call opens a new connection
        assert row is not None and row.status == "queued"
        store.close()


@pytest.mark.parametrize(("exc", "kind"), [
    (pg_errors.UniqueViolation("duplicate key"), InternalError),
    (pg_errors.SerializationFailure("could not serialize"), DatabaseUnavailable),
    (pg_errors.DeadlockDetected("deadlock"), DatabaseUnavailable),
    (pg_errors.AdminShutdown("terminating connection"), DatabaseUnavailable),
    (pg_errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
     DatabaseUnavailable),
    (pg_errors.InsufficientPrivilege("permission denied"), DatabaseRejected),
    (pg_errors.InvalidSchemaName("no schema"), DatabaseRejected),
    (psycopg.OperationalError("connection failed: FATAL:  password authentication failed"),
     DatabaseRejected),
    (psycopg.OperationalError("server closed the connection unexpectedly"),
     DatabaseUnavailable),
])
def test_postgres_translation_by_class(exc: psycopg.Error, kind: type[Exception]) -> None:
    assert type(pg_store.translate(exc)) is kind


def test_sqlite_busy_is_transient_and_a_bad_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = SqliteMetadata(str(path), busy_timeout=0.1)
    store.create(NewPhoto(1, "originals/1"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(DatabaseUnavailable, match="locked"):
        store.start(Job(1, 1))
    holder.execute("ROLLBACK")
    assert store.start(Job(1, 1)).lease == 1
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseRejected, match="PHOTOPIPE_DATABASE_URL"):
        SqliteMetadata(str(tmp_path / "junk.db"))
    assert type(sqlite_store.translate(sqlite3.IntegrityError("UNIQUE failed"))) is InternalError


def _read_only(port: int, on: bool) -> None:
    """Every new transaction on the server read-only (as on a standby), or not; waits until a
    new session sees it."""
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                         autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET default_transaction_read_only = on" if on else
                     "ALTER SYSTEM RESET default_transaction_read_only")
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while True:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres") as conn:
            found = conn.execute("SHOW default_transaction_read_only").fetchone()
        if found == ("on" if on else "off",):
            return
        assert time.monotonic() < deadline, "the server never took the setting"
        time.sleep(0.05)


def test_a_write_on_a_primary_turned_standby_is_transient_and_goes_to_the_new_one(
        shard_urls: list[str], pg_servers: Any) -> None:
    """The store's URL lists two servers with target_session_attrs=read-write (a libpq
    multi-host URL, as an HA cluster is given); the first stops taking writes, as a demoted
    primary does: the write that lands there is transient, and the next one, on a new
    connection, goes to the other server."""
    name = shard_urls[0].rsplit("/", 1)[1]
    first, second = pg_servers.direct[0], pg_servers.direct[1]
    for port in (first, second):
        PostgresMetadata(f"postgresql://postgres@127.0.0.1:{port}/{name}").upgrade()
    store = PostgresMetadata(f"postgresql://postgres@127.0.0.1:{first},127.0.0.1:{second}/"
                             f"{name}?target_session_attrs=read-write")
    before = store.allocate_id()
    store.create(NewPhoto(before, "originals/a"))
    _read_only(first, True)
    try:
        with pytest.raises(DatabaseUnavailable, match="ReadOnlySqlTransaction"):
            store.create(NewPhoto(before + 1, "originals/b"))
        store.create(NewPhoto(before + 1, "originals/b"))  # retried: a new connection
    finally:
        _read_only(first, False)
    for port, expected in ((first, [before]), (second, [before + 1])):
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/{name}") as conn:
            assert [r[0] for r in conn.execute("SELECT id FROM photos ORDER BY id")] == expected
