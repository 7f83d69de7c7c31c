"""The ``photopipe`` commands of the production path: submit, worker, status, db upgrade."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import PhotopipeError
from pipeline.metadata import open_metadata
from pipeline.producer import InProcess, Publisher, Upload, submit
from pipeline.settings import Settings
from pipeline.storage import open_store


def add_commands(commands: Any) -> None:
    """Register the service commands on the CLI's subparsers."""
    sub = commands.add_parser("submit", help="queue files for processing, as the web tier does")
    sub.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    sub.add_argument("--user-id", type=int, required=True)
    sub.add_argument("--filter", default=None)
    sub.add_argument("--strength", type=float, default=1.0)
    sub.add_argument("--ladder", default="default")
    sub.add_argument("--json", action="store_true")
    sub.set_defaults(run=run_submit)
    worker = commands.add_parser("worker", help="process queued photos (Celery worker)")
    worker.add_argument("--concurrency", type=int, default=None, metavar="N")
    worker.set_defaults(run=run_worker)
    status = commands.add_parser("status", help="photos per state and the queue's depth")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=run_status)
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply migrations").set_defaults(run=run_upgrade)


def run_submit(args: argparse.Namespace, settings: Settings) -> int:
    store, db = open_store(settings), open_metadata(settings)
    publisher = _publisher(settings, store, db)
    failed = False
    try:
        for path in args.paths:
            try:
                upload = Upload(args.user_id, path.read_bytes(), None, args.filter,
                                args.strength, args.ladder)
                photo_id: int | None = submit(upload, store, db, publisher, settings)
                error = None
            except (OSError, ValueError, PhotopipeError) as exc:
                photo_id, error, failed = None, f"{type(exc).__name__}: {exc}", True
            print(json.dumps({"path": str(path), "photo_id": photo_id, "error": error})
                  if args.json else f"{path}: {photo_id if error is None else error}",
                  flush=True)
    finally:
        db.close()
    return 1 if failed else 0


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.broker_url:
        print("photopipe: PHOTOPIPE_BROKER_URL is not set; `photopipe submit` runs jobs "
              "in-process without a worker", file=sys.stderr)
        return 2
    from workers.app import QUEUE, declare_topology
    from workers.tasks import app

    declare_topology(app)
    # One node name per process: two workers on a host must not share a remote-control queue.
    argv = ["worker", "--loglevel=INFO", "-Q", QUEUE, "--without-gossip", "--without-mingle",
            "--without-heartbeat", f"--hostname=photopipe-{os.getpid()}@%h"]
    if args.concurrency:
        argv.append(f"--concurrency={args.concurrency}")
    app.worker_main(argv)
    return 0


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    db = open_metadata(settings)
    try:
        counts = db.counts()
    finally:
        db.close()
    depth = _queue_depth(settings)
    if args.json:
        print(json.dumps({"photos": counts, "queue": {"depth": depth}}))
    else:
        print("  ".join(f"{state} {n}" for state, n in counts.items()) +
              f"  queue {'-' if depth is None else depth}")
    return 0


def run_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    db = open_metadata(settings)
    try:
        version = db.upgrade()
    finally:
        db.close()
    print(f"database schema at version {version}")
    return 0


def _publisher(settings: Settings, store: Any, db: Any) -> Publisher:
    if not settings.broker_url:
        return InProcess(store, db, settings)
    from workers.app import make_app
    from workers.publisher import CeleryPublisher

    return CeleryPublisher(make_app(settings))


def _queue_depth(settings: Settings) -> int | None:
    """Jobs waiting in the broker's queue; None without a broker, 0 before the first job."""
    if not settings.broker_url:
        return None
    from workers.app import declare_topology, make_app, queue_depth

    app = make_app(settings)
    declare_topology(app)
    return queue_depth(app)
