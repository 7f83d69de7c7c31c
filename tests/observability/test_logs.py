"""One line per finished job: JSON fields with PHOTOPIPE_LOG_FORMAT=json, a sentence otherwise."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pipeline.jobs import Job, Measures, Outcome
from pipeline.observability import logs
from pipeline.observability.report import report
from pipeline.settings import Settings


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    root.handlers[:] = saved
    root.setLevel(level)


def _log_one(log_format: str, outcome: Outcome) -> str:
    stream = io.StringIO()
    logs.configure(Settings.from_env({"PHOTOPIPE_LOG_FORMAT": log_format}), stream=stream)
    report(outcome, 1.25)
    return stream.getvalue()


FAILED = Outcome("failed", Job(42, 3), "truncated", "image file is truncated", 2,
                 measures=Measures({"fetch": 0.0123456789}, {}, 0.05, "default", None))
READY = Outcome("ready", Job(43, 1), attempt=1, measures=Measures(
    {"fetch": 0.01, "decode": 0.04, "resize": 0.02, "encode": 0.05, "store": 0.03,
     "record": 0.002}, {"jpg": 120_000, "webp": 80_000}, 0.18, "default", "lark"))


def test_json_is_one_object_per_finished_job_with_its_fields(root_handlers: None) -> None:
    (line,) = _log_one("json", FAILED).splitlines()
    record = json.loads(line)
    assert {k: record[k] for k in ("photo_id", "generation", "attempt", "status",
                                   "error_code", "error", "queue_wait", "logger", "level")} == {
        "photo_id": 42, "generation": 3, "attempt": 2, "status": "failed",
        "error_code": "truncated", "error": "image file is truncated", "queue_wait": 1.25,
        "logger": "photopipe.jobs", "level": "WARNING"}
    assert record["timings"] == {"fetch": 0.012346} and record["bytes"] == {}
    assert record["message"].startswith("photo 42: failed (attempt 2) truncated")
    assert "time" in record and record["cpu_seconds"] == 0.05


def test_json_of_a_rendered_photo_has_every_stage_and_its_bytes(root_handlers: None) -> None:
    record = json.loads(_log_one("json", READY))
    assert list(record["timings"]) == ["fetch", "decode", "resize", "encode", "store",
                                       "record"]
    assert record["bytes"] == {"jpg": 120_000, "webp": 80_000}
    assert (record["level"], record["error_code"]) == ("INFO", None)


def test_plain_is_a_sentence_a_person_reads(root_handlers: None) -> None:
    line = _log_one("plain", READY).strip()
    assert "INFO photopipe.jobs: photo 43: ready (attempt 1) in 0.152 s" in line
    assert not line.startswith("{")


def test_other_loggers_follow_the_format_too(root_handlers: None) -> None:
    stream = io.StringIO()
    logs.configure(Settings(log_format="json"), stream=stream)
    logging.getLogger("celery.worker").warning("consumer: connection lost")
    record = json.loads(stream.getvalue())
    assert (record["logger"], record["message"]) == ("celery.worker", "consumer: connection lost")


def test_an_unknown_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="PHOTOPIPE_LOG_FORMAT must be one of plain, json"):
        Settings.from_env({"PHOTOPIPE_LOG_FORMAT": "yaml"})
