"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.settings import Settings
from pipeline.storage.memory import MemoryStore
from tests import services


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings rooted in the test's own temporary folder."""
    return Settings(storage_url=f"file://{tmp_path / 'objects'}",
                    database_url=f"sqlite:///{tmp_path / 'photopipe.db'}")


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[SqliteMetadata]:
    db = SqliteMetadata(str(tmp_path / "meta.db"))
    yield db
    db.close()


@pytest.fixture(scope="session")
def moto() -> Iterator[services.S3Server]:
    """moto's S3 server over HTTP on loopback."""
    yield from services.moto_server()


@pytest.fixture(scope="session")
def ceph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.S3Server]:
    """Ceph's RADOS gateway: a production S3 that checks signatures and checksums."""
    yield from services.ceph_gateway(tmp_path_factory.mktemp("ceph"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL on a schema of this test's own."""
    yield from services.postgres_schema()


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """An AMQP URL on a RabbitMQ vhost of this test's own."""
    yield from services.rabbit_vhost()


@pytest.fixture(scope="session")
def pg_servers() -> Iterator[Any]:
    """Three PostgreSQL servers of the tests' own, the third behind pgbouncer."""
    from tests.metadata.shards import cluster

    with cluster.servers() as found:
        yield found


@pytest.fixture
def shard_urls(pg_servers: Any) -> Iterator[list[str]]:
    """A fresh database on each of the three servers (the first is the catalog)."""
    from tests.metadata.shards import cluster

    with cluster.databases(pg_servers) as urls:
        yield urls
