"""The endpoints: /metrics with the backlog, /healthz, /readyz with each check's status."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from pipeline.metadata import Backlog
from pipeline.observability.health import Checker, Probe
from pipeline.observability.server import serve

state = {"broker": True}


def _broker() -> dict[str, int]:
    if not state["broker"]:
        raise ConnectionRefusedError("broker gone")
    return {"photopipe.photos": 7, "photopipe.photos.dead": 0}


@pytest.fixture
def url() -> Iterator[str]:
    registry = CollectorRegistry()
    Counter("photopipe_test_total", "a job metric", registry=registry).inc(3)
    checker = Checker([Probe("metadata", lambda: Backlog(4, 12.5, 1, 0.25)),
                       Probe("storage", lambda: None), Probe("broker", _broker)], max_age=0)
    server = serve("127.0.0.1", 0, registry, checker)
    state["broker"] = True
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_has_the_registry_the_backlog_and_readiness(url: str) -> None:
    status, text = _get(url + "/metrics")
    samples = _samples(text)
    assert status == 200
    assert samples[("photopipe_test_total", ())] == 3
    assert samples[("photopipe_queue_depth", (("queue", "photopipe.photos"),))] == 7
    assert samples[("photopipe_backlog_photos", ())] == 4
    assert samples[("photopipe_backlog_oldest_seconds", ())] == 12.5
    assert samples[("photopipe_outbox_jobs", ())] == 1
    assert samples[("photopipe_outbox_oldest_seconds", ())] == 0.25
    assert {labels: v for (name, labels), v in samples.items() if name == "photopipe_ready"} \
        == {(("check", "metadata"),): 1, (("check", "storage"),): 1, (("check", "broker"),): 1}


def test_readyz_turns_503_and_names_what_is_down(url: str) -> None:
    status, body = _get(url + "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    state["broker"] = False
    status, body = _get(url + "/readyz")
    checks = json.loads(body)["checks"]
    assert status == 503 and json.loads(body)["ready"] is False
    assert (checks["broker"]["ok"], checks["metadata"]["ok"], checks["storage"]["ok"]) == (
        False, True, True)
    assert "broker gone" in checks["broker"]["error"]
    samples = _samples(_get(url + "/metrics")[1])
    assert samples[("photopipe_ready", (("check", "broker"),))] == 0
    assert not any(name == "photopipe_queue_depth" for name, _ in samples)  # unknown, not 0
    assert _get(url + "/healthz") == (200, '{"alive": true}')


def test_an_unknown_path_is_404(url: str) -> None:
    assert _get(url + "/metricz")[0] == 404
