"""The shard map: even contiguous spreading, placement by user, routing by id's bits."""

from __future__ import annotations

import pytest

from pipeline.metadata.shards.map import MAX_LOGICAL, ShardMap, schema, shard_bits

URLS = ["postgresql://a/db", "postgresql://b/db", "postgresql://c/db"]


def test_spread_is_even_and_contiguous() -> None:
    shard_map = ShardMap.spread(64, URLS)
    databases = shard_map.databases()
    assert list(databases) == URLS
    assert [len(s) for s in databases.values()] == [22, 21, 21]
    assert databases[URLS[0]] == list(range(22)) and databases[URLS[2]][-1] == 63
    assert shard_map.version == 1 and shard_map.logical == 64
    assert ShardMap.spread(MAX_LOGICAL, URLS).logical == 8192


def test_placement_by_user_and_routing_by_id() -> None:
    shard_map = ShardMap.spread(64, URLS)
    assert [shard_map.of_user(u) for u in (0, 1, 63, 64, 130)] == [0, 1, 63, 0, 2]
    photo_id = (123_456 << 23) | (42 << 10) | 7
    assert shard_bits(photo_id) == 42 == shard_map.of_photo(photo_id)
    assert shard_bits((1 << 23) | (8191 << 10) | 1023) == 8191  # all 13 bits, no more
    assert schema(42) == "shard_0042" and schema(8191) == "shard_8191"


def test_a_move_is_a_new_version_with_one_shard_elsewhere() -> None:
    shard_map = ShardMap.spread(8, URLS[:2])
    moved = shard_map.moved(3, URLS[2])
    assert moved.version == 2 and moved.url(3) == URLS[2]
    assert [moved.url(n) for n in range(8) if n != 3] == \
        [shard_map.url(n) for n in range(8) if n != 3]


def test_impossible_maps_are_refused() -> None:
    with pytest.raises(ValueError, match="1 to 8192"):
        ShardMap.spread(8193, URLS)
    with pytest.raises(ValueError, match="cannot spread"):
        ShardMap.spread(2, URLS)
    with pytest.raises(ValueError, match="at least one"):
        ShardMap.spread(4, [])
