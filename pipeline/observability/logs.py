"""Logs: plain lines for people, or one JSON object per line (``PHOTOPIPE_LOG_FORMAT=json``).

The standard logging module underneath, python-json-logger for the JSON. Every finished job
logs one line through :func:`job`: its photo id, attempt, status, error code, stage timings and
bytes, as fields in JSON and as a short sentence in plain text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from pipeline.settings import Settings

JOBS = logging.getLogger("photopipe.jobs")
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "message")


def configure(settings: Settings, *, level: int = logging.INFO,
              stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record of the process to ``stream`` (default stderr), formatted as
    ``settings.log_format`` says; replaces the root logger's handlers. Returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``plain`` or ``json``."""
    if log_format == "json":
        return JsonFormatter(list(JSON_FIELDS), rename_fields={"asctime": "time",
                                                               "levelname": "level",
                                                               "name": "logger"})
    return logging.Formatter(PLAIN)


def job(photo_id: int, generation: int, *, status: str, attempt: int | None,
        code: str | None, message: str | None, timings: Mapping[str, float],
        written: Mapping[str, int], queue_wait: float | None, cpu_seconds: float) -> None:
    """Log how one attempt at a job ended: one line, at warning level if it failed."""
    fields: dict[str, Any] = {
        "photo_id": photo_id, "generation": generation, "attempt": attempt, "status": status,
        "error_code": code, "error": message,
        "timings": {stage: round(seconds, 6) for stage, seconds in timings.items()},
        "bytes": dict(written), "queue_wait": None if queue_wait is None
        else round(queue_wait, 6), "cpu_seconds": round(cpu_seconds, 6),
    }
    text = f"photo {photo_id}: {status} (attempt {attempt})"
    if code:
        text += f" {code}: {message}"
    if timings:
        text += f" in {sum(timings.values()):.3f} s"
    JOBS.log(logging.WARNING if status == "failed" else logging.INFO, text, extra=fields)
