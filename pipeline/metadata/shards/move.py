"""Moving one logical shard to another database, whole, while the service runs.

The move is a row in ``shardmap.moves`` that goes ``copying -> fenced -> switched -> done``:

1. **copying**: the shard's schema is created (empty) on the target. In one transaction on the
   source, the shard's fence is raised (``LOCK TABLE shard_state IN ACCESS EXCLUSIVE MODE``,
   then ``moved = true``: it waits for the transactions in flight, and holds every new one at
   its first statement, the fence's read), its rows are
   copied to the target in one transaction there, and the copy is verified (row counts of
   every table and a checksum of the photo ids) before either commits. The target commits,
   then the source: from then on every transaction on the old copy answers
   :class:`~pipeline.metadata.postgres.ShardMoved` (transient: the job retries, nothing fails).
2. **fenced**: the map points the shard at the target (its version bumped): processes re-read
   it and go there.
3. **switched**: the old copy is dropped. **done**.

Killed at any point, the same command resumes from the recorded state (a copy is redone from
scratch; the source, fenced, cannot have changed). A move claimed by another process in the
last minute is refused, so two never run at once.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

from pipeline.metadata.postgres import PostgresMetadata
from pipeline.metadata.shards.catalog import Catalog
from pipeline.metadata.shards.map import schema
from pipeline.metadata.shards.store import ShardedMetadata
from pipeline.metadata.sql import Cursor

# Every table of a shard's schema (renditions after photos: its foreign key).
TABLES = ("photos", "renditions", "outbox", "idempotency_keys", "upload_counts", "uploads",
          "webhooks")
CLAIM_SECONDS = 60
_VERIFY = {
    "photos": "SELECT count(*) AS n, md5(coalesce(string_agg(id::text, ',' ORDER BY id), '')) "
              "AS sum FROM photos",
    "renditions": "SELECT count(*) AS n, md5(coalesce(string_agg(object_key, ',' ORDER BY "
                  "object_key), '')) AS sum FROM renditions",
    "outbox": "SELECT count(*) AS n, md5(coalesce(string_agg(id::text || ':' || photo_id || "
              "':' || generation, ',' ORDER BY id), '')) AS sum FROM outbox",
    "idempotency_keys": "SELECT count(*) AS n, md5(coalesce(string_agg(user_id || ':' || key "
                        "|| ':' || photo_id, ',' ORDER BY user_id, key), '')) AS sum "
                        "FROM idempotency_keys",
    "upload_counts": "SELECT count(*) AS n, md5(coalesce(string_agg(user_id || ':' || minute "
                     "|| ':' || n, ',' ORDER BY user_id, minute), '')) AS sum FROM upload_counts",
    "uploads": "SELECT count(*) AS n, md5(coalesce(string_agg(photo_id || ':' || version, ',' "
               "ORDER BY photo_id), '')) AS sum FROM uploads",
    "webhooks": "SELECT count(*) AS n, md5(coalesce(string_agg(id || ':' || photo_id || ':' || "
                "event, ',' ORDER BY id), '')) AS sum FROM webhooks",
}


class MoveRefused(Exception):
    """The move cannot start: another is running, or the request does not make sense."""


def move(store: ShardedMetadata, shard: int, target: str) -> dict[str, Any]:
    """Move logical ``shard`` to the database ``target`` (see the module); returns what was
    done: ``photos``, ``fenced_seconds``, ``version``, ``source``, ``target``, ``resumed``."""
    shard_map = store.shard_map(now=True)
    if shard_map is None:
        raise MoveRefused("this database holds no shard map (`photopipe shards init`)")
    if not 0 <= shard < shard_map.logical:
        raise MoveRefused(f"there is no logical shard {shard} (0-{shard_map.logical - 1})")
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    row = _claim(store.catalog_store, shard, shard_map.url(shard), target, owner)
    report: dict[str, Any] = {"shard": shard, "source": row["source"], "target": target,
                              "resumed": row["resumed"], "photos": None,
                              "fenced_seconds": 0.0}
    state = row["state"]
    source, catalog = store.view(shard, row["source"]), Catalog(store.catalog_store)
    if state == "copying":
        report["photos"], report["fenced_seconds"] = _copy(source, store.view(shard, target))
        state = _advance(store.catalog_store, row["id"], owner, "fenced")
    if state == "fenced":
        report["version"] = catalog.place(shard, target)
        state = _advance(store.catalog_store, row["id"], owner, "switched")
    if state == "switched":
        with source.transaction(fenced=False) as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema(shard)}" CASCADE')
        _advance(store.catalog_store, row["id"], owner, "done")
    report.setdefault("version", (store.shard_map(now=True) or shard_map).version)
    return report


def _claim(catalog: PostgresMetadata, shard: int, source: str, target: str,
           owner: str) -> dict[str, Any]:
    """The move's row, new or resumed, claimed by ``owner``."""
    with catalog.transaction() as cur:
        cur.execute("SELECT *, extract(epoch FROM now() - updated_at) AS age "
                    "FROM shardmap.moves WHERE state <> 'done' FOR UPDATE")
        running = cur.fetchone()
        if running is not None:
            if (running["shard"], running["target"]) != (shard, target):
                raise MoveRefused(f"shard {running['shard']} is being moved to "
                                  f"{running['target'].rsplit('@', 1)[-1]}: finish that first")
            if running["owner"] != owner and float(running["age"]) < CLAIM_SECONDS:
                raise MoveRefused(f"this move is running ({running['owner']}, last step "
                                  f"{float(running['age']):.0f} s ago)")
            cur.execute("UPDATE shardmap.moves SET owner = %s, updated_at = now() "
                        "WHERE id = %s", (owner, running["id"]))
            return {**running, "resumed": True}
        if source == target:
            raise MoveRefused(f"shard {shard} is on that database already")
        cur.execute("INSERT INTO shardmap.moves (shard, source, target, state, owner) "
                    "VALUES (%s, %s, %s, 'copying', %s) RETURNING *",
                    (shard, source, target, owner))
        return {**cur.fetchone(), "resumed": False}


def _advance(catalog: PostgresMetadata, move_id: int, owner: str, state: str) -> str:
    with catalog.transaction() as cur:
        cur.execute("UPDATE shardmap.moves SET state = %s, updated_at = now() "
                    "WHERE id = %s AND owner = %s RETURNING id", (state, move_id, owner))
        if cur.fetchone() is None:
            raise MoveRefused("another process took this move over")
    return state


def _copy(source: PostgresMetadata, target: PostgresMetadata) -> tuple[int, float]:
    """Fence the source, copy its rows into a fresh schema on the target, verify, commit the
    target and then the source. Returns the photos copied and how long writes were held."""
    target.upgrade()
    with source.transaction(fenced=False) as src:
        # waits for the transactions in flight (each holds the fence table's ACCESS SHARE
        # lock from its first statement) and holds every new one there
        src.execute("LOCK TABLE shard_state IN ACCESS EXCLUSIVE MODE; "
                    "UPDATE shard_state SET moved = true")
        fenced = time.monotonic()
        with target.transaction(fenced=False) as dst:
            dst.execute(f"TRUNCATE {', '.join(TABLES)}")  # an earlier attempt's copy
            for table in TABLES:
                _copy_table(src, dst, table)
            _carry_sequences(src, dst)
            dst.execute("UPDATE shard_state SET moved = false")
            expected = {t: _verify(src, t) for t in TABLES}
            found = {t: _verify(dst, t) for t in TABLES}
            if found != expected:
                raise RuntimeError(f"the copy differs from the source: {found} != {expected}")
        return int(expected["photos"][0]), time.monotonic() - fenced


def _copy_table(src: Cursor, dst: Cursor, table: str) -> None:
    reader: Any = src
    writer: Any = dst
    with reader.copy(f"COPY {table} TO STDOUT (FORMAT binary)") as out, \
            writer.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as into:
        for block in out:
            into.write(block)


def _carry_sequences(src: Cursor, dst: Cursor) -> None:
    for sequence in ("photo_id_seq", "outbox_id_seq", "webhooks_id_seq"):
        src.execute(f"SELECT last_value, is_called FROM {sequence}")
        row = src.fetchone()
        dst.execute("SELECT setval(%s, %s, %s)", (sequence, row["last_value"],
                                                  row["is_called"]))


def _verify(cur: Cursor, table: str) -> tuple[int, str]:
    cur.execute(_VERIFY[table])
    row = cur.fetchone()
    return int(row["n"]), str(row["sum"])
