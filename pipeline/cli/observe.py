"""The commands an operator watches the service with: health, exporter; and the metrics
endpoint ``photopipe worker --metrics-port`` serves.

Nothing here imports prometheus_client at module level (see
:func:`pipeline.observability.registry.use_directory`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.observability.health import Checker, Health
from pipeline.observability.probes import probes, unprotected
from pipeline.settings import Settings


def add_commands(commands: Any) -> None:
    """Register the observability commands on the CLI's subparsers."""
    health = commands.add_parser("health", help="check the broker, database and object store")
    health.add_argument("--json", action="store_true")
    health.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="how long each check may take (default 5)")
    health.set_defaults(run=run_health)
    exporter = commands.add_parser("exporter", help="serve the backlog (queue depth, oldest "
                                   "waiting job) and readiness, without a worker")
    exporter.add_argument("--port", type=int, required=True, metavar="N")
    exporter.add_argument("--host", default="0.0.0.0", metavar="ADDRESS")
    exporter.set_defaults(run=run_exporter)


def run_health(args: argparse.Namespace, settings: Settings) -> int:
    checker = Checker(probes(settings), timeout=args.timeout, max_age=0)
    health = checker.check()
    checker.close()
    alone = unprotected(health)
    ready = health.ready and not alone
    if args.json:
        print(json.dumps({**health.as_json(), "ready": ready,
                          "no_synchronous_standby": alone}))
    else:
        print(describe(health, alone))
    return 0 if ready else 1


def describe(health: Health, alone: list[str]) -> str:
    """One line per check, one per cluster without a synchronous standby, and the verdict."""
    lines = [f"{r.name}: {'ok' if r.ok else 'DOWN'} ({r.seconds * 1000:.0f} ms)"
             + (f" {r.error}" if r.error else "") for r in health.results]
    lines += [f"replication: NO SYNCHRONOUS STANDBY for {url}" for url in alone]
    return "\n".join([*lines, "ready" if health.ready and not alone else "not ready"])


def run_exporter(args: argparse.Namespace, settings: Settings) -> int:
    from prometheus_client import CollectorRegistry

    from pipeline.observability.metrics import READS
    from pipeline.observability.server import serve

    registry = CollectorRegistry()
    registry.register(READS)  # its backlog reads, by the role that answered
    try:
        server = serve(args.host, args.port, registry,
                       Checker(probes(settings, backlog_from_standby=True)))
    except OSError as exc:
        print(f"photopipe: cannot serve on port {args.port}: {exc}", file=sys.stderr)
        return 2
    print(f"serving /metrics, /healthz, /readyz on {args.host}:{server.server_address[1]}",
          file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.shutdown()
    return 0


def count_into(directory: Path) -> None:
    """Make this process and its pool processes count metrics into ``directory``."""
    from pipeline.observability.registry import use_directory

    use_directory(directory)


def serve_metrics(settings: Settings, host: str, port: int, directory: Path, *,
                  pool_size: int) -> ThreadingHTTPServer:
    """Serve the worker's endpoints: its processes' metrics summed, readiness, backlog."""
    from pipeline.observability import metrics
    from pipeline.observability.registry import registry
    from pipeline.observability.server import serve

    metrics.POOL_SIZE.set(pool_size)
    return serve(host, port, registry(directory), Checker(probes(settings)))
