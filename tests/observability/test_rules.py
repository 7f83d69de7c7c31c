"""The alert rules and the dashboard in deploy/: valid for Prometheus's own tools, and over
the metrics photopipe exports, no others."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import REGISTRY

from pipeline.observability import metrics  # noqa: F401 (registers the job metrics)
from pipeline.web import metrics as http_metrics  # noqa: F401 (and serve's)
from tests.observability.prom import DASHBOARD, RULES

HERE = Path(__file__).parent
# Gauges the worker's main process computes at each scrape (pipeline/observability/server.py).
SCRAPE_TIME = {"photopipe_ready", "photopipe_queue_depth", "photopipe_backlog_photos",
               "photopipe_backlog_oldest_seconds", "photopipe_outbox_jobs",
               "photopipe_outbox_oldest_seconds", "photopipe_backlog_without_job_oldest_seconds",
               "photopipe_database_cluster", "photopipe_database_standbys",
               "photopipe_database_standby_lag_bytes",
               "photopipe_database_standby_replay_lag_seconds"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "Debian's prometheus is not installed: scripts/services-up installs it"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def _exported() -> set[str]:
    names = set(SCRAPE_TIME)
    for family in REGISTRY.collect():
        if family.name.startswith("photopipe_"):
            names |= {sample.name for sample in family.samples}
            names |= {f"{family.name}{s}" for s in ("_bucket", "_sum", "_count", "_total")
                      if family.type in ("histogram", "counter")}
    return names


def _used(text: str) -> set[str]:
    return set(re.findall(r"\bphotopipe_[a-z_]+\b", text)) - {"photopipe_"}


def test_promtool_checks_the_rules() -> None:
    out = _promtool("check", "rules", str(RULES))
    assert out.returncode == 0 and "SUCCESS: 10 rules found" in out.stdout, out.stdout + \
        out.stderr


def test_promtool_unit_tests_each_alert_firing_and_quiet() -> None:
    out = _promtool("test", "rules", str(HERE / "alerts_test.yml"))
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    tested = set(re.findall(r"alertname: (\w+)", (HERE / "alerts_test.yml").read_text()))
    assert tested == set(re.findall(r"- alert: (\w+)", RULES.read_text()))


def test_rules_and_dashboard_name_only_exported_metrics() -> None:
    exported = _exported()
    expressions = "\n".join(
        t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"]
        for t in p.get("targets", []))
    used = _used(RULES.read_text()) | _used(expressions)
    assert used and used <= exported, sorted(used - exported)
    # and every job metric is on the dashboard somewhere
    families = {f.name for f in REGISTRY.collect() if f.name.startswith("photopipe_")}
    assert all(any(u.startswith(f) for u in _used(expressions)) for f in families), families


def test_the_dashboard_is_a_grafana_model_over_a_chosen_datasource() -> None:
    model = json.loads(DASHBOARD.read_text())
    assert model["uid"] == "photopipe" and model["schemaVersion"] >= 36
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in model["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" and p["targets"] for p in panels)
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
