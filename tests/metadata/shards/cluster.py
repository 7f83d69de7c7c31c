"""Three PostgreSQL servers of the tests' own on loopback, the third behind pgbouncer in
transaction pooling mode; each test gets fresh databases on all three."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import psycopg

from tests import private


@dataclass
class Servers:
    """Where each server answers: ``direct`` ports, and the ports clients use (the third
    through pgbouncer)."""

    direct: list[int]
    client: list[int]
    instances: list[private.Postgres]


@contextmanager
def servers() -> Iterator[Servers]:
    with ExitStack() as stack:
        instances = [stack.enter_context(private.postgres()) for _ in range(3)]
        bouncer = stack.enter_context(private.pgbouncer(instances[2].port))
        ports = [i.port for i in instances]
        yield Servers(ports, [ports[0], ports[1], bouncer.port], instances)


@contextmanager
def databases(found: Servers) -> Iterator[list[str]]:
    """A fresh database on each server; yields the URLs clients use (the catalog is the
    first)."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    for port in found.direct:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    try:
        yield [f"postgresql://postgres@127.0.0.1:{port}/{name}" for port in found.client]
    finally:
        for port in found.direct:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                                 autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
