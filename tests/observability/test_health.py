"""Readiness probes answer within their deadline, whatever the dependency does."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pipeline.observability.health import Checker, Probe
from pipeline.observability.probes import probes
from pipeline.settings import Settings


def test_each_probe_has_its_own_status() -> None:
    def broken() -> None:
        raise ConnectionRefusedError("connection refused")

    health = Checker([Probe("metadata", lambda: 3), Probe("broker", broken)]).check()
    assert not health.ready
    assert health.as_json()["checks"] == {
        "metadata": {"ok": True, "seconds": health.results[0].as_json()["seconds"],
                     "error": None},
        "broker": {"ok": False, "seconds": health.results[1].as_json()["seconds"],
                   "error": "ConnectionRefusedError: connection refused"}}
    assert health.get("metadata").value == 3  # type: ignore[union-attr]


def test_a_probe_that_raises_timeout_error_is_down_not_pending() -> None:
    def slow_client() -> None:
        raise TimeoutError("timed out")

    checker = Checker([Probe("storage", slow_client)], max_age=0)
    assert checker.check().results[0].error == "TimeoutError: timed out"
    assert checker.check().results[0].error == "TimeoutError: timed out"


def test_a_hanging_dependency_reads_down_within_the_deadline_and_is_not_asked_again() -> None:
    release, calls = threading.Event(), []

    def hangs() -> str:
        calls.append(1)
        release.wait(30)
        return "back"

    checker = Checker([Probe("storage", hangs), Probe("metadata", lambda: 1)], timeout=0.3,
                      max_age=0)
    started = time.monotonic()
    first = checker.check()
    assert time.monotonic() - started < 1.0
    assert not first.ready and first.get("metadata").ok  # type: ignore[union-attr]
    assert first.get("storage").error.startswith("no answer after 0.")  # type: ignore[union-attr]
    second = checker.check()
    assert not second.ready and len(calls) == 1  # still waiting on the first call
    release.set()
    time.sleep(0.05)
    third = checker.check()
    assert third.ready and third.get("storage").value == "back"  # type: ignore[union-attr]
    assert len(checker.check().results) == 2 and len(calls) == 2  # asked again once back
    checker.close()


def test_results_are_reused_for_max_age() -> None:
    calls: list[int] = []
    checker = Checker([Probe("metadata", lambda: calls.append(1))], max_age=60)
    checker.check()
    checker.check()
    assert calls == [1]


def test_the_embedded_default_has_no_broker_to_check(tmp_path: Path) -> None:
    settings = Settings.from_env({"PHOTOPIPE_DATA_DIR": str(tmp_path)})
    found = probes(settings)
    assert [p.name for p in found] == ["metadata", "storage"]
    health = Checker(found).check()
    assert health.ready, health.as_json()
    assert health.get("metadata").value.queued == 0  # type: ignore[union-attr]
    with_broker = Settings.from_env({"PHOTOPIPE_DATA_DIR": str(tmp_path),
                                     "PHOTOPIPE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"})
    assert [p.name for p in probes(with_broker)] == ["metadata", "storage", "broker"]
