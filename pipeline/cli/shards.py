"""`photopipe shards init | list | move`: the shard map, and moving a logical shard."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import PhotopipeError
from pipeline.metadata import Server
from pipeline.metadata.shards.map import MAX_LOGICAL
from pipeline.settings import Settings


def add_commands(commands: Any) -> None:
    """Register the shard commands on the CLI's subparsers."""
    shards = commands.add_parser("shards", help="the shard map: logical shards over databases")
    actions = shards.add_subparsers(required=True, metavar="ACTION")
    init = actions.add_parser("init", help="create the map and every shard's schema")
    init.add_argument("--logical", type=int, default=MAX_LOGICAL, metavar="N",
                      help=f"logical shards, fixed from now on (default {MAX_LOGICAL})")
    init.add_argument("urls", nargs="+", metavar="URL", help="the databases to spread over")
    init.set_defaults(run=run_init)
    listing = actions.add_parser("list", help="logical -> database, photos per shard")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_list)
    move = actions.add_parser("move", help="move one logical shard to another database")
    move.add_argument("shard", type=int, metavar="SHARD")
    move.add_argument("--to", required=True, metavar="URL")
    move.add_argument("--json", action="store_true")
    move.set_defaults(run=run_move)


def _store(settings: Settings) -> Any:
    from pipeline.metadata.shards.store import ShardedMetadata

    if urlsplit(settings.database_url).scheme not in ("postgresql", "postgres"):
        raise SystemExit("photopipe: shards need PostgreSQL (PHOTOPIPE_DATABASE_URL names the "
                         "catalog)")
    return ShardedMetadata(settings.database_url,
                           statement_timeout_ms=settings.statement_timeout_ms,
                           lock_timeout_ms=settings.lock_timeout_ms)


def run_init(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.metadata.shards.admin import init

    store = _store(settings)
    try:
        shard_map = init(store, args.logical, args.urls)
    except (PhotopipeError, ValueError) as exc:
        print(f"photopipe: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    for url, shards in shard_map.databases().items():
        print(f"{redact(url)}: shards {shards[0]}-{shards[-1]} ({len(shards)})")
    print(f"shard map version {shard_map.version}: {shard_map.logical} logical shards")
    return 0


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.metadata.shards.admin import listing

    store = _store(settings)
    try:
        shard_map, shards = listing(store)
        servers = store.replication()
    except PhotopipeError as exc:
        print(f"photopipe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if shard_map is None:
        print("photopipe: no shard map: one database holds everything (`photopipe shards "
              "init` creates one)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"version": shard_map.version, "logical": shard_map.logical,
                          "shards": [{"shard": s.shard, "url": redact(s.url),
                                      "photos": s.photos} for s in shards],
                          "servers": [_server_json(s) for s in servers]}))
        return 0
    print(f"shard map version {shard_map.version}: {shard_map.logical} logical shards")
    for url, numbers in shard_map.databases().items():
        photos = sum(shards[n].photos for n in numbers)
        print(f"{redact(url)}: {len(numbers)} shards, {photos} photos")
    print("servers (the catalog's first):")
    for server in servers:
        print(f"  {_describe(server)}")
    return 0


def _server_json(server: Server) -> dict[str, Any]:
    return {"url": server.url, "primary": server.primary, "ha": server.ha,
            "synchronous": server.synchronous,
            "standbys": [{"name": s.name, "address": s.address, "state": s.state,
                          "sync_state": s.sync_state, "lag_bytes": s.lag_bytes,
                          "replay_lag_seconds": s.replay_lag} for s in server.standbys]}


def _describe(server: Server) -> str:
    """One server on one line: its primary, each standby's state and lag, and a warning when
    a cluster has no synchronous standby."""
    standbys = "; ".join(
        f"standby {s.name} ({s.address or 'local'}) {s.sync_state} {s.state}, "
        f"{'?' if s.lag_bytes is None else s.lag_bytes} bytes behind"
        + ("" if s.replay_lag is None else f", replay lag {s.replay_lag:.3f} s")
        for s in server.standbys) or "no standby"
    warning = "  NO SYNCHRONOUS STANDBY" if server.ha and not server.synchronous else ""
    return f"{server.url}: primary {server.primary}; {standbys}{warning}"


def run_move(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.metadata.shards.move import MoveRefused, move

    store = _store(settings)
    try:
        report = move(store, args.shard, args.to)
    except (PhotopipeError, MoveRefused, ValueError) as exc:
        print(f"photopipe: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        print(json.dumps({**report, "source": redact(report["source"]),
                          "target": redact(report["target"])}))
    else:
        print(f"shard {args.shard}: {report['photos']} photos moved from "
              f"{redact(report['source'])} to {redact(report['target'])}, fenced for "
              f"{report['fenced_seconds']:.2f} s; map version {report['version']}")
    return 0


def redact(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
