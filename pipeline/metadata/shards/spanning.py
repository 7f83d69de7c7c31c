"""Statements over many shards' schemas at once, and merging what they return.

Each ``*_BRANCH`` reads one shard's schema (``{s}``); :meth:`ShardedMetadata._per_database`
joins a chunk of them with UNION ALL as ``{rows}`` in the statement of the same name.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from pipeline.metadata.port import PhotoRow

COUNTS_BRANCH = "SELECT status, count(*) AS n FROM {s}.photos GROUP BY status"
COUNTS = "SELECT status, sum(n)::bigint AS n FROM ({rows}) AS t GROUP BY status"
BACKLOG_BRANCH = (
    "SELECT (SELECT count(*) FROM {s}.photos WHERE status = 'queued') AS q, "
    "(SELECT min(updated_at) FROM {s}.photos WHERE status = 'queued') AS oq, "
    "(SELECT count(*) FROM {s}.outbox) AS o, (SELECT min(created_at) FROM {s}.outbox) AS oo, "
    "(SELECT min(updated_at) FROM {s}.photos p WHERE status = 'queued' AND NOT EXISTS "
    "(SELECT 1 FROM {s}.outbox WHERE outbox.photo_id = p.id)) AS ow")
BACKLOG = ("SELECT sum(q)::bigint AS q, extract(epoch FROM now() - min(oq)) AS oq, "
           "sum(o)::bigint AS o, extract(epoch FROM now() - min(oo)) AS oo, "
           "extract(epoch FROM now() - min(ow)) AS ow FROM ({rows}) AS t")

# The shards whose table ({table}: outbox, webhooks) holds rows, by the server's statistics.
PENDING = ("SELECT schemaname FROM pg_stat_user_tables WHERE relname = '{table}' "
           "AND n_live_tup > 0 AND schemaname ~ '^shard_[0-9]+$'")


def stuck_branch(queued_for: float, processing_for: float, limit: int) -> str:
    """One shard's photos no job may render (see ``MetadataStore.stuck``), at most ``limit``,
    longest-waiting first; the numbers are written into the statement as numbers."""
    waited = "extract(epoch FROM now() - updated_at)"
    return ("(SELECT id, generation, updated_at FROM {s}.photos p WHERE "
            f"(status = 'queued' AND {waited} > {float(queued_for)!r} OR "
            f"status = 'processing' AND {waited} > {float(processing_for)!r}) AND NOT EXISTS "
            "(SELECT 1 FROM {s}.outbox WHERE outbox.photo_id = p.id) "
            f"ORDER BY updated_at, id LIMIT {int(limit)})")


def stuck(limit: int) -> str:
    return f"SELECT * FROM ({{rows}}) AS t ORDER BY updated_at, id LIMIT {int(limit)}"


def age(seconds: Any) -> float | None:
    return None if seconds is None else max(0.0, float(seconds))


def oldest(ages: Iterable[float | None]) -> float | None:
    known = [a for a in ages if a is not None]
    return max(known) if known else None


def merged(pages: list[list[PhotoRow]], limit: int) -> list[PhotoRow]:
    """Pages each sorted by id, merged by id, the first ``limit``."""
    merged = heapq.merge(*pages, key=lambda row: row.id)
    return [row for _, row in zip(range(limit), merged, strict=False)]
