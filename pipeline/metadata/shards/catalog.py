"""The shard map's tables, in the catalog: the database ``PHOTOPIPE_DATABASE_URL`` names.

``shardmap.meta`` holds the map's version and number of logical shards, ``shardmap.shards``
each logical shard's database URL, ``shardmap.moves`` the moves in progress (at most one at a
time). Every statement runs in its own short transaction (no session state).
"""

from __future__ import annotations

from pipeline.errors import ConfigurationError
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.metadata.shards.map import ShardMap

_TABLES = """
CREATE SCHEMA IF NOT EXISTS shardmap;
CREATE TABLE IF NOT EXISTS shardmap.meta (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    version  bigint NOT NULL,
    logical  integer NOT NULL
);
CREATE TABLE IF NOT EXISTS shardmap.shards (
    shard  integer PRIMARY KEY,
    url    text NOT NULL
);
CREATE TABLE IF NOT EXISTS shardmap.moves (
    id          bigserial PRIMARY KEY,
    shard       integer NOT NULL,
    source      text NOT NULL,
    target      text NOT NULL,
    state       text NOT NULL CHECK (state IN ('copying', 'fenced', 'switched', 'done')),
    owner       text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS shardmap_one_move ON shardmap.moves ((true))
    WHERE state <> 'done';
"""


class MapExists(ConfigurationError):
    """``shards init`` on a catalog that has a map already."""

    code = "configuration"


class Catalog:
    """Reads and writes the map through ``store`` (the catalog database's own schema)."""

    def __init__(self, store: PostgresMetadata) -> None:
        self.store = store

    def version(self) -> int | None:
        """The map's version, or None when this database holds no shard map."""
        with self.store.transaction() as cur:
            cur.execute("SELECT to_regclass('shardmap.meta') IS NOT NULL AS sharded")
            if not cur.fetchone()["sharded"]:
                return None
            cur.execute("SELECT version FROM shardmap.meta")
            row = cur.fetchone()
        return None if row is None else int(row["version"])

    def read(self) -> ShardMap | None:
        """The map, or None when this database holds none (one database, no shards)."""
        with self.store.transaction() as cur:
            cur.execute("SELECT to_regclass('shardmap.meta') IS NOT NULL AS sharded")
            if not cur.fetchone()["sharded"]:
                return None
            cur.execute("SELECT version FROM shardmap.meta")
            meta = cur.fetchone()
            if meta is None:
                return None
            cur.execute("SELECT url FROM shardmap.shards ORDER BY shard")
            urls = tuple(r["url"] for r in cur.fetchall())
        return ShardMap(int(meta["version"]), urls)

    def create(self, shard_map: ShardMap) -> None:
        """Write a new map. Raises MapExists when there is one already."""
        with self.store.transaction() as cur:
            cur.execute(_TABLES)
            cur.execute("LOCK TABLE shardmap.meta IN EXCLUSIVE MODE")
            cur.execute("SELECT count(*) AS n FROM shardmap.meta")
            if cur.fetchone()["n"]:
                raise MapExists("this catalog has a shard map already (`photopipe shards "
                                "list` shows it)")
            cur.execute("INSERT INTO shardmap.meta (version, logical) VALUES (%s, %s)",
                        (shard_map.version, shard_map.logical))
            cur.executemany("INSERT INTO shardmap.shards (shard, url) VALUES (%s, %s)",
                            list(enumerate(shard_map.placement)))

    def place(self, shard: int, url: str) -> int:
        """Move ``shard`` to ``url`` in the map; returns the new version."""
        with self.store.transaction() as cur:
            cur.execute("UPDATE shardmap.shards SET url = %s WHERE shard = %s", (url, shard))
            cur.execute("UPDATE shardmap.meta SET version = version + 1 RETURNING version")
            return int(cur.fetchone()["version"])
