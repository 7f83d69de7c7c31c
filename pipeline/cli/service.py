"""The commands of the production path: submit, worker, relay, sweep, status, db upgrade."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from pipeline import sweep, webhooks
from pipeline.cli import observe
from pipeline.errors import (
    BrokerRejected,
    BrokerUnavailable,
    ConfigurationError,
    PhotopipeError,
    TooLarge,
)
from pipeline.jobs import process
from pipeline.metadata import MetadataStore, open_metadata
from pipeline.producer import InProcess, Publisher, Upload, submit
from pipeline.records import Job
from pipeline.relay import drain
from pipeline.relay import run as relay_loop
from pipeline.settings import Settings
from pipeline.storage import ObjectStore, open_store


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
    worker.add_argument("--metrics-port", type=int, default=None, metavar="N",
                        help="serve /metrics, /healthz and /readyz on this port")
    worker.add_argument("--metrics-host", default="0.0.0.0", metavar="ADDRESS",
                        help="the address to serve them on (default: every interface)")
    worker.set_defaults(run=run_worker)
    relay = commands.add_parser("relay", help="publish the jobs the outbox holds")
    relay.add_argument("--once", action="store_true", help="drain the outbox once and exit")
    relay.add_argument("--interval", type=float, default=1.0, metavar="SECONDS")
    relay.set_defaults(run=run_relay)
    stuck = commands.add_parser("sweep", help="queue again the photos whose job was lost")
    stuck.add_argument("--dry-run", action="store_true", help="say what it would queue")
    stuck.add_argument("--limit", type=int, default=sweep.STUCK_LIMIT, metavar="N")
    stuck.add_argument("--json", action="store_true")
    stuck.set_defaults(run=run_sweep)
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
                upload = Upload(args.user_id, _read(path, settings), None, args.filter,
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


def _read(path: Path, settings: Settings) -> bytes:
    """The file's bytes, refused by its size before it is read."""
    size = path.stat().st_size
    if size > settings.limits.max_bytes:
        raise TooLarge(f"{size} bytes is over the limit of {settings.limits.max_bytes}")
    return path.read_bytes()


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.broker_url:
        print("photopipe: PHOTOPIPE_BROKER_URL is not set; `photopipe submit` runs jobs "
              "in-process without a worker", file=sys.stderr)
        return 2
    db = _checked_metadata(settings)
    if db is None:
        return 2
    if settings.webhook_url is not None:
        try:
            webhooks.check(settings)
        except ConfigurationError as exc:
            print(f"photopipe: {exc}", file=sys.stderr)
            return 2
    # Before any thread starts: the pool processes are forked from this one, and a fork taken
    # while another thread imports a module inherits that module's import lock, held by a
    # thread that does not exist in the child: its first import of it waits forever (seen:
    # a job hung in open_store's lazy import of the S3 store while the readiness probes,
    # behind /metrics, imported it). So everything they import lazily is imported here.
    open_store(settings)
    if args.metrics_port is not None:  # before anything imports prometheus_client
        observe.count_into(metrics_dir(settings, args.metrics_port))
    from celery import signals

    from pipeline.observability import logs
    from pipeline.web.server import start_webhooks  # and the webhooks' signing library
    from workers.app import consumed_queues, declare_topology
    from workers.publisher import CeleryPublisher
    from workers.tasks import app

    signals.setup_logging.connect(lambda **_: logs.configure(settings), weak=False)
    concurrency = args.concurrency or os.cpu_count() or 1
    declare_topology(app)  # the broker's transport loaded too, before the metrics' threads
    if args.metrics_port is not None:
        try:
            observe.serve_metrics(settings, args.metrics_host, args.metrics_port,
                                  metrics_dir(settings, args.metrics_port),
                                  pool_size=concurrency)
        except OSError as exc:
            print(f"photopipe: cannot serve metrics on port {args.metrics_port}: {exc}",
                  file=sys.stderr)
            return 2
    publisher = CeleryPublisher(app)
    stop = threading.Event()

    def start_relay(**_: Any) -> None:  # in the main process, once the pool is up
        threading.Thread(target=relay_loop, args=(db, publisher.publish, stop),
                         name="photopipe-relay", daemon=True).start()
        start_sweeper(settings, stop)
        if settings.webhook_url is not None:
            start_webhooks(settings, stop)

    signals.worker_ready.connect(start_relay, weak=False)
    # One node name per process: two workers on a host must not share a remote-control queue.
    argv = ["worker", "--loglevel=INFO", "-Q", ",".join(consumed_queues(settings.broker_url)),
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            f"--hostname=photopipe-{os.getpid()}@%h", f"--concurrency={concurrency}"]
    try:
        app.worker_main(argv)
    finally:
        stop.set()
    return 0


def start_sweeper(settings: Settings, stop: threading.Event) -> None:
    """The stuck sweep in a thread of the worker's main process, with its own store."""
    from pipeline.observability import metrics

    def report(result: sweep.Rescue) -> None:
        metrics.SWEEP_REQUEUED.inc(len(result.requeued))

    threading.Thread(target=sweep.run, args=(settings, lambda: open_metadata(settings),
                                             lambda: _queue_depth(settings) or 0, stop),
                     kwargs={"holder": f"{socket.gethostname()}:{os.getpid()}",
                             "report": report},
                     name="photopipe-sweep", daemon=True).start()


def run_sweep(args: argparse.Namespace, settings: Settings) -> int:
    """One pass of the stuck sweep now; without a broker, the jobs it queues run here."""
    db = _checked_metadata(settings)
    if db is None:
        return 2
    try:
        result = sweep.rescue(db, settings, lambda: _queue_depth(settings) or 0,
                              limit=args.limit, dry_run=args.dry_run)
        if result.requeued and not settings.broker_url:
            _run_here(db, open_store(settings), settings)
    except PhotopipeError as exc:
        print(f"photopipe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    if args.json:
        print(json.dumps({"found": [str(j.photo_id) for j in result.found],
                          "requeued": [str(j.photo_id) for j in result.requeued],
                          "queue_depth": result.waiting, "held_back": result.held_back}))
    else:
        print(sweep.describe(result, settings) if result.found else
              f"sweep: no photo has waited over {settings.stuck_after:g} s with no job")
    return 0


def _run_here(db: MetadataStore, store: ObjectStore, settings: Settings) -> None:
    """Without a broker: take the outbox's jobs out, then run each (not inside the relay's
    transaction, which the job's own commits would have to nest in)."""
    jobs: list[Job] = []
    drain(db, jobs.append)
    for job in jobs:
        process(job, store, db, settings)


def run_relay(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.broker_url:
        print("photopipe: PHOTOPIPE_BROKER_URL is not set: there is no broker to relay to",
              file=sys.stderr)
        return 2
    db = _checked_metadata(settings)
    if db is None:
        return 2
    from pipeline.observability import logs
    from workers.app import make_app
    from workers.publisher import CeleryPublisher

    publisher = CeleryPublisher(make_app(settings))
    logs.configure(settings)
    try:
        if args.once:
            print(f"published {drain(db, publisher.publish)} jobs")
        else:
            relay_loop(db, publisher.publish, threading.Event(), interval=args.interval)
    except PhotopipeError as exc:
        print(f"photopipe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    db = _checked_metadata(settings)
    if db is None:
        return 2
    processing_for = max(settings.stuck_after, float(settings.task_time_limit))
    try:
        counts, outbox = db.reader().counts(), db.outbox_size()
        stuck = len(db.stuck(settings.stuck_after, processing_for, sweep.STUCK_LIMIT))
    except PhotopipeError as exc:
        print(f"photopipe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    depth, broker_error = None, None
    try:
        depth = _queue_depth(settings)
    except (BrokerUnavailable, BrokerRejected) as exc:
        broker_error = str(exc)
    if args.json:
        queue: dict[str, Any] = {"depth": depth, "outbox": outbox}
        if broker_error is not None:
            queue["error"] = broker_error
        print(json.dumps({"photos": counts, "queue": queue, "stuck": stuck}))
    else:
        print("  ".join(f"{state} {n}" for state, n in counts.items()) +
              f"  queue {'-' if depth is None else depth}  outbox {outbox}" +
              (f"  (broker: {broker_error})" if broker_error else ""))
        if stuck:
            print(f"stuck {stuck}: waited over {settings.stuck_after:g} s with no job (lost by "
                  "the broker?); the workers' sweep or `photopipe sweep` queues them again")
    return 0 if broker_error is None else 1


def run_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    try:
        db = open_metadata(settings)
        version = db.upgrade()
    except PhotopipeError as exc:
        print(f"photopipe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    db.close()
    print(f"database schema at version {version}")
    return 0


def metrics_dir(settings: Settings, port: int) -> Path:
    """Where the worker serving metrics on ``port`` keeps its processes' metric files."""
    return settings.metrics_dir or Path(tempfile.gettempdir()) / f"photopipe-metrics-{port}"


def _checked_metadata(settings: Settings) -> MetadataStore | None:
    """The metadata store, having checked it answers; None (and why, on stderr) if it does
    not accept photopipe at all."""
    try:
        db = open_metadata(settings)
        db.outbox_size()
    except ConfigurationError as exc:
        print(f"photopipe: {exc}", file=sys.stderr)
        return None
    except PhotopipeError as exc:  # down for now: the caller's own retries deal with it
        print(f"photopipe: warning: {type(exc).__name__}: {exc}", file=sys.stderr)
    return db


def _publisher(settings: Settings, store: ObjectStore, db: MetadataStore) -> Publisher:
    if not settings.broker_url:
        return InProcess(store, db, settings)
    from workers.app import make_app
    from workers.publisher import CeleryPublisher

    return CeleryPublisher(make_app(settings))


def _queue_depth(settings: Settings) -> int | None:
    """Jobs waiting in the broker's queue; None without a broker, 0 before the first job.

    Raises:
        BrokerUnavailable: the broker does not answer within a few seconds.
    """
    if not settings.broker_url:
        return None
    from workers.app import declare_topology, make_app, queue_depth
    from workers.publisher import BROKER_ERRORS, BROKER_REFUSALS

    app = make_app(settings)
    app.conf.broker_connection_timeout = 3
    try:
        declare_topology(app)
        return queue_depth(app)
    except BROKER_REFUSALS as exc:
        raise BrokerRejected(f"{type(exc).__name__}: {exc} (check PHOTOPIPE_BROKER_URL)") \
            from exc
    except BROKER_ERRORS as exc:
        raise BrokerUnavailable(f"{settings.broker_url.split('@')[-1]}: {exc}") from exc
