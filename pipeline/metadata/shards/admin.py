"""What `photopipe shards init` and `shards list` do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.metadata.shards.catalog import Catalog
from pipeline.metadata.shards.map import ShardMap
from pipeline.metadata.shards.store import ShardedMetadata


@dataclass(frozen=True)
class ShardInfo:
    """One logical shard as ``shards list`` shows it."""

    shard: int
    url: str
    photos: int


def init(store: ShardedMetadata, logical: int, urls: Sequence[str]) -> ShardMap:
    """Create the map (``logical`` shards spread over ``urls``) in ``store``'s catalog, then
    every shard's schema, migrated. Raises MapExists when the catalog has a map already."""
    shard_map = ShardMap.spread(logical, urls)
    store.catalog_store.upgrade()
    Catalog(store.catalog_store).create(shard_map)
    store.upgrade()
    return shard_map


def listing(store: ShardedMetadata) -> tuple[ShardMap | None, list[ShardInfo]]:
    """The map, and each logical shard with its database and how many photos it holds."""
    shard_map = store.shard_map(now=True)
    if shard_map is None:
        return None, []
    counts = store.each_shard(lambda view: sum(view.counts().values()))
    return shard_map, [ShardInfo(shard, shard_map.url(shard), n)
                       for shard, n in enumerate(counts)]
