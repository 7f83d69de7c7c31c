"""The HTTP API's commands: serve, and ticket (what the web tier mints for a user)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline import webhooks
from pipeline.errors import ConfigurationError
from pipeline.observability.registry import use_directory
from pipeline.settings import Settings
from pipeline.web import tickets

# httptools parses in C; h11, pure Python, costs serve more CPU an upload (benchmarks/glue.py)
PARSERS = ("httptools", "h11")


def add_commands(commands: Any) -> None:
    """Register serve and ticket."""
    serve = commands.add_parser("serve", help="the HTTP API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", metavar="ADDRESS")
    serve.add_argument("--port", type=int, default=8000, metavar="N")
    serve.add_argument("--workers", type=int, default=1, metavar="K",
                       help="processes answering requests (default 1)")
    serve.add_argument("--http", choices=PARSERS, default=PARSERS[0],
                       help="uvicorn's HTTP parser: httptools (C, the default) or h11 (Python)")
    serve.set_defaults(run=run_serve)
    ticket = commands.add_parser("ticket", help="print an upload ticket for a user")
    ticket.add_argument("--user-id", type=int, required=True, metavar="N")
    ticket.add_argument("--ttl", type=int, default=tickets.DEFAULT_TTL, metavar="SECONDS")
    ticket.add_argument("--max-bytes", type=int, default=None, metavar="N",
                        help="the largest upload it allows (default PHOTOPIPE_MAX_BYTES)")
    ticket.set_defaults(run=run_ticket)


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    try:
        tickets.key(settings)  # refuse to start without one, and say why
        if settings.webhook_url is not None:
            webhooks.check(settings)
    except ConfigurationError as exc:
        print(f"photopipe: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("photopipe: --workers must be at least 1", file=sys.stderr)
        return 2
    # before prometheus_client loads: every process of this serve counts into one directory
    use_directory((settings.metrics_dir or Path(tempfile.gettempdir()))
                  / f"photopipe-serve-metrics-{args.port}")
    import uvicorn

    uvicorn.run("pipeline.web.server:asgi", factory=True, host=args.host, port=args.port,
                workers=args.workers, http=args.http, log_level="info", access_log=False,
                timeout_graceful_shutdown=10)
    return 0


def run_ticket(args: argparse.Namespace, settings: Settings) -> int:
    try:
        print(tickets.issue(args.user_id, ttl=args.ttl, max_bytes=args.max_bytes,
                            settings=settings))
    except (ValueError, ConfigurationError) as exc:
        print(f"photopipe: {exc}", file=sys.stderr)
        return 2
    return 0
