"""What ``serve`` counts, and its access lines: a pure ASGI middleware around the app that
times each request, counts it by route template, method and status, counts the body bytes
received, and writes one access line (JSON with ``PHOTOPIPE_LOG_FORMAT=json``).

Imported only once the process's metrics directory is chosen (``photopipe serve`` does it
first): with ``--workers K``, ``/metrics`` sums every process's counts.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from pipeline.observability.metrics import READS  # noqa: F401 (the API counts its reads by role)
from pipeline.observability.registry import ENV, registry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                Awaitable[None]]
SECONDS_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
log = logging.getLogger("photopipe.access")

REQUESTS = Counter("photopipe_http_requests_total", "Requests answered, by route, method and "
                   "status", ["route", "method", "status"])
DURATION = Histogram("photopipe_http_request_seconds", "Seconds from a request's start to its "
                     "response's end, by route", ["route"], buckets=SECONDS_BUCKETS)
RECEIVED = Counter("photopipe_http_received_bytes_total", "Request body bytes received")
UPLOADS = Gauge("photopipe_http_uploads_in_progress", "Uploads being received or submitted",
                multiprocess_mode="livesum")


def exposition() -> tuple[bytes, str]:
    """The metrics page: every process's counts summed where they share a directory."""
    directory = os.environ.get(ENV)
    source: CollectorRegistry = registry(Path(directory)) if directory else REGISTRY
    return generate_latest(source), CONTENT_TYPE_LATEST


class Observed:
    """The app, its requests counted, timed and logged."""

    def __init__(self, app: ASGI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, seen = time.perf_counter(), {"status": 500, "bytes": 0}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
            return message

        async def noted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, counted_receive, noted_send)
        finally:
            _account(scope, seen, time.perf_counter() - started)


def _account(scope: Scope, seen: dict[str, int], seconds: float) -> None:
    route = getattr(scope.get("route"), "path", "unmatched")
    REQUESTS.labels(route, scope["method"], str(seen["status"])).inc()
    DURATION.labels(route).observe(seconds)
    RECEIVED.inc(seen["bytes"])
    log.info("%s %s %s %.3f s", scope["method"], scope["path"], seen["status"], seconds,
             extra={"method": scope["method"], "path": scope["path"], "route": route,
                    "status": seen["status"], "seconds": round(seconds, 6),
                    "bytes_received": seen["bytes"]})
