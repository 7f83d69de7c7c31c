"""The shard map: which physical database holds each logical shard, and how a photo or a user
finds its shard.

A photo's id carries its logical shard in bits 10-22 (41 bits of milliseconds, 13 of shard, 10
of sequence), so an id alone routes every operation after the first; the first, allocating the
id, places the photo on its user's shard (``user_id % logical``), so one user's photos live
together and listing them is one query on one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_LOGICAL = 8192  # the 13 shard bits of an id
SHARD_SHIFT, SHARD_MASK = 10, MAX_LOGICAL - 1


def schema(shard: int) -> str:
    """The schema logical shard ``shard`` lives in."""
    return f"shard_{shard:04d}"


def shard_bits(photo_id: int) -> int:
    """The logical shard number a photo id carries."""
    return (photo_id >> SHARD_SHIFT) & SHARD_MASK


@dataclass(frozen=True)
class ShardMap:
    """Logical shard ``n`` lives on the database ``placement[n]``; ``version`` grows with
    every change."""

    version: int
    placement: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.placement) <= MAX_LOGICAL:
            raise ValueError(f"the number of logical shards must be 1 to {MAX_LOGICAL}")

    @property
    def logical(self) -> int:
        return len(self.placement)

    @classmethod
    def spread(cls, logical: int, urls: Sequence[str], version: int = 1) -> ShardMap:
        """``logical`` shards over ``urls`` evenly, in contiguous ranges (the first URL holds
        shards 0 to logical/len(urls) - 1, and so on)."""
        if not urls:
            raise ValueError("at least one database URL is needed")
        if logical < len(urls):
            raise ValueError(f"{logical} logical shards cannot spread over {len(urls)} "
                             "databases")
        return cls(version, tuple(urls[n * len(urls) // logical] for n in range(logical)))

    def of_user(self, user_id: int) -> int:
        """The logical shard a user's photos are placed on."""
        return user_id % self.logical

    def of_photo(self, photo_id: int) -> int:
        """The logical shard a photo lives on, read from its id."""
        return shard_bits(photo_id) % self.logical

    def url(self, shard: int) -> str:
        return self.placement[shard]

    def databases(self) -> dict[str, list[int]]:
        """Each database, with the logical shards it holds (in order)."""
        found: dict[str, list[int]] = {}
        for shard, url in enumerate(self.placement):
            found.setdefault(url, []).append(shard)
        return found

    def moved(self, shard: int, url: str) -> ShardMap:
        """This map with ``shard`` on ``url``, one version later."""
        placement = list(self.placement)
        placement[shard] = url
        return ShardMap(self.version + 1, tuple(placement))
