"""The HTTP endpoints a worker (or ``photopipe exporter``) serves beside its work.

``/metrics``  the jobs' metrics summed over the worker's processes, and the backlog for
              autoscaling (queue depth, photos waiting and the age of the oldest), read from
              the broker and the metadata store at the scrape
``/healthz``  200 while the process answers
``/readyz``   200 when the broker, the metadata store and the object store all answer, 503
              otherwise; the body says each one's status
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from pipeline.metadata import Backlog, Server
from pipeline.observability.health import Checker


class BacklogCollector:
    """Readiness and backlog gauges, from the checker's latest round of probes."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    def collect(self) -> Iterator[Metric]:
        health = self.checker.check()
        ready = GaugeMetricFamily("photopipe_ready", "1 when the dependency answers, else 0",
                                  labels=["check"])
        for result in health.results:
            ready.add_metric([result.name], 1.0 if result.ok else 0.0)
        yield ready
        broker = health.get("broker")
        if broker is not None and broker.ok and isinstance(broker.value, dict):
            depth = GaugeMetricFamily("photopipe_queue_depth",
                                      "Jobs waiting in the broker's queue", labels=["queue"])
            for queue, n in broker.value.items():
                depth.add_metric([queue], float(n))
            yield depth
        metadata = health.get("metadata")
        if metadata is not None and metadata.ok and isinstance(metadata.value, Backlog):
            yield from _backlog(metadata.value)
        replication = health.get("replication")
        if replication is not None and replication.ok and isinstance(replication.value, list):
            yield from _replication(replication.value)


def _backlog(backlog: Backlog) -> Iterator[Metric]:
    yield GaugeMetricFamily("photopipe_backlog_photos",
                            "Photos queued for a render (new, requeued, between retries)",
                            value=backlog.queued)
    yield GaugeMetricFamily("photopipe_backlog_oldest_seconds",
                            "How long the longest-waiting queued photo has waited",
                            value=backlog.oldest_queued or 0.0)
    yield GaugeMetricFamily("photopipe_outbox_jobs", "Jobs committed, not yet on the broker",
                            value=backlog.outbox)
    yield GaugeMetricFamily("photopipe_backlog_without_job_oldest_seconds",
                            "Seconds the oldest queued photo with no job in the outbox has "
                            "waited (its job is on the broker, or lost)",
                            value=backlog.oldest_without_job or 0.0)
    yield GaugeMetricFamily("photopipe_outbox_oldest_seconds",
                            "How long the oldest unsent job has waited in the outbox",
                            value=backlog.oldest_outbox or 0.0)


def _replication(servers: list[Server]) -> Iterator[Metric]:
    labels = ["database"]
    cluster = GaugeMetricFamily("photopipe_database_cluster", "1 when the database's URL "
                                "lists several hosts (an HA cluster), else 0", labels=labels)
    standbys = GaugeMetricFamily("photopipe_database_standbys",
                                 "Standbys streaming from a database server's primary, by "
                                 "synchronous state", labels=[*labels, "sync_state"])
    lag = GaugeMetricFamily("photopipe_database_standby_lag_bytes",
                            "WAL a standby has not replayed yet", labels=[*labels, "standby"])
    replay = GaugeMetricFamily("photopipe_database_standby_replay_lag_seconds",
                               "Seconds from a commit on the primary to its replay on the "
                               "standby (PostgreSQL's replay_lag: 0 once idle)",
                               labels=[*labels, "standby"])
    for server in servers:
        cluster.add_metric([server.url], 1.0 if server.ha else 0.0)
        states = Counter(s.sync_state for s in server.standbys if s.state == "streaming")
        for state in ("sync", "quorum", "potential", "async"):
            standbys.add_metric([server.url, state], float(states[state]))
        for standby in server.standbys:
            if standby.lag_bytes is not None:
                lag.add_metric([server.url, standby.name], float(standby.lag_bytes))
            if standby.state == "streaming":
                replay.add_metric([server.url, standby.name], float(standby.replay_lag or 0.0))
    yield from (cluster, standbys, lag, replay)


def serve(host: str, port: int, registry: CollectorRegistry,
          checker: Checker) -> ThreadingHTTPServer:
    """Serve the endpoints on ``host:port`` from a daemon thread; returns the server
    (``shutdown()`` stops it). Port 0 takes a free port (``server.server_address``).

    Raises:
        OSError: the port cannot be bound.
    """
    registry.register(BacklogCollector(checker))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                self._json(200, {"alive": True})
            elif path == "/readyz":
                health = checker.check()
                self._json(200 if health.ready else 503, health.as_json())
            else:
                self._json(404, {"error": f"no such endpoint {path}"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(body).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="photopipe-metrics",
                     daemon=True).start()
    return server
