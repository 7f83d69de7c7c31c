"""One call per attempt at a job: count it in the metrics and log its line."""

from __future__ import annotations

from contextlib import AbstractContextManager

from pipeline.jobs import Outcome
from pipeline.observability import logs, metrics


def running() -> AbstractContextManager[None]:
    """Count a job in progress for the duration of the block."""
    return metrics.IN_PROGRESS.track_inprogress()


def report(outcome: Outcome, queue_wait: float | None) -> None:
    """Count ``outcome`` and log it (``queue_wait``: seconds the job waited to be taken)."""
    measured = outcome.measures
    rendered = outcome.status == "ready" and measured.ladder is not None
    metrics.observe(outcome.status, outcome.code, queue_wait=queue_wait,
                    timings=measured.timings, written=measured.written,
                    cpu=(measured.ladder or "", measured.look, measured.cpu_seconds)
                    if rendered else None)
    logs.job(outcome.job.photo_id, outcome.job.generation, status=outcome.status,
             attempt=outcome.attempt, code=outcome.code, message=outcome.message,
             timings=measured.timings, written=measured.written, queue_wait=queue_wait,
             cpu_seconds=measured.cpu_seconds)
