"""Prometheus metrics of the jobs, correct under Celery's prefork pool.

Each pool process counts into its own memory-mapped files (prometheus_client's multiprocess
mode: ``PROMETHEUS_MULTIPROC_DIR``, which :func:`~pipeline.observability.registry.use_directory`
sets before the client is imported), and the worker's main process sums them when it is
scraped. A pool process that is killed leaves its files behind, so what it counted stays
counted; its replacement has a pid of its own and counts from zero in new files, so nothing is
counted twice. Only the jobs-in-progress gauge must forget a dead process:
:mod:`~pipeline.observability.registry` drops the live gauges of processes that are gone at
every scrape.

Labels are bounded: stages, statuses, photopipe's own error codes, formats, ladders and looks;
never a photo or user id.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from pipeline.errors import ENDING_CODES, PhotopipeError
from pipeline.metadata import reads

# Buckets per stage, from what each takes on a 12 MP phone photo (benchmarks/) out to the
# outliers worth seeing: a 100 MP upload, a slow S3, a queue backed up for an hour.
STAGE_BUCKETS: dict[str, tuple[float, ...]] = {
    "fetch": (.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
    "decode": (.005, .01, .025, .05, .075, .1, .15, .25, .5, 1, 2.5, 5),
    "look": (.005, .01, .025, .05, .075, .1, .15, .25, .5, 1, 2.5),
    "resize": (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1),
    "placeholder": (.00025, .0005, .001, .002, .005, .01, .025, .05, .1),
    "encode": (.005, .01, .025, .05, .075, .1, .15, .25, .5, 1, 2.5),
    "store": (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
    "record": (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5),
}
QUEUE_WAIT_BUCKETS = (.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
CPU_BUCKETS = (.05, .1, .15, .2, .3, .5, .75, 1, 1.5, 2.5, 5, 10)

QUEUE_WAIT = Histogram("photopipe_queue_wait_seconds",
                       "From the job's commit (or its retry falling due) to a worker taking it",
                       buckets=QUEUE_WAIT_BUCKETS)
STAGES = {stage: Histogram(f"photopipe_stage_{stage}_seconds",
                           f"Seconds in the {stage} stage, per attempt that completed it",
                           buckets=buckets)
          for stage, buckets in STAGE_BUCKETS.items()}
FINISHED = Counter("photopipe_photos_finished_total",
                   "Photos whose render ended for good, by status and error code",
                   ["status", "code"])
JOBS = Counter("photopipe_jobs_total", "Attempts at jobs, by how they ended", ["outcome"])
RETRIES = Counter("photopipe_retries_total", "Attempts ended to be tried again, by reason",
                  ["reason"])
IN_PROGRESS = Gauge("photopipe_jobs_in_progress", "Jobs being processed now",
                    multiprocess_mode="livesum")
POOL_SIZE = Gauge("photopipe_worker_pool_size", "Pool processes the worker runs jobs in",
                  multiprocess_mode="livesum")
SWEEP_REQUEUED = Counter("photopipe_sweep_requeued_total",
                         "Photos the stuck sweep queued again: their job was lost by the broker")
WEBHOOKS = Counter("photopipe_webhooks_total", "Webhook deliveries by how they ended "
                   "(delivered, retry, gone, given_up, overtaken)", ["outcome"])
BYTES = Counter("photopipe_rendition_bytes_total", "Bytes of renditions written, by format",
                ["format"])
CPU = Histogram("photopipe_render_cpu_seconds",
                "CPU seconds of one photo's render, by the render spec's ladder and look",
                ["ladder", "look"], buckets=CPU_BUCKETS)
READS = Counter("photopipe_database_reads_total", "Reads a standby may serve (listings, "
                "documents, counts, backlog, selections), by the role of the server that "
                "answered", ["role"])
reads.observe(lambda role: READS.labels(role).inc())


def codes() -> frozenset[str]:
    """Every code photopipe itself gives an ending: the label values ``code`` may take."""
    found, todo = set(ENDING_CODES), [PhotopipeError]
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo.extend(cls.__subclasses__())
    return frozenset(found | {"done", "superseded"})


_CODES = codes()


def label(code: str | None) -> str:
    """``code`` as a label value: one of :func:`codes`, ``""`` for none, ``other`` otherwise
    (so a code that is not photopipe's cannot grow the series without bound)."""
    if code is None:
        return ""
    return code if code in _CODES else "other"


def observe(status: str, code: str | None, *, queue_wait: float | None,
            timings: Mapping[str, float], written: Mapping[str, int],
            cpu: tuple[str, str | None, float] | None) -> None:
    """Count one attempt: how it ended, its wait, its stages, its bytes and, for a photo
    rendered, its CPU seconds (``cpu`` is ladder, look, seconds)."""
    _child(JOBS, status).inc()
    if status in ("ready", "failed"):
        _child(FINISHED, status, label(code)).inc()
    elif status == "retry":
        _child(RETRIES, label(code)).inc()
    if queue_wait is not None:
        QUEUE_WAIT.observe(max(0.0, queue_wait))
    for stage, seconds in timings.items():
        if stage in STAGES:
            STAGES[stage].observe(seconds)
    for fmt, size in written.items():
        _child(BYTES, fmt).inc(size)
    if cpu is not None:
        _child(CPU, cpu[0], cpu[1] or "none").observe(cpu[2])


@functools.cache
def _child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once per label set (the sets are bounded)."""
    return metric.labels(*values)
