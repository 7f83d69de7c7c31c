"""A real Prometheus scrapes two real workers while they run 50 photos; what it stored is
what happened: the photo count, one stage observation per photo, queue waits above zero, the
hostile upload under its error code, the JSON log line of every job; the dashboard's queries
and the alert rules evaluate on it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.faults.harness import deploy, files, settle, submit
from tests.observability.prom import DASHBOARD, Prometheus, prometheus
from tests.services import S3Server, free_port
from tests.workers.harness import Deployment, wait_until

HOSTILE = Path(__file__).parents[1] / "fixtures" / "photos" / "hostile" / "truncated_photo.jpg"
RENDERED_STAGES = ("decode", "resize", "encode", "store", "record")


def test_prometheus_scrapes_two_workers_through_50_photos(
        amqp_url: str, postgres_url: str, moto: S3Server, tmp_path: Path) -> None:
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto, PHOTOPIPE_LOG_FORMAT="json")
    ports = [free_port(), free_port()]
    try:
        for index, port in enumerate(ports):
            deployment.start_worker("--metrics-port", str(port), "--metrics-host", "127.0.0.1",
                                    env={"PHOTOPIPE_METRICS_DIR": str(tmp_path / f"m{index}")})
        with prometheus(tmp_path / "prometheus", ports) as server:
            server.wait_for('count(up{job="photopipe"} == 1)', 2)
            looked = submit(deployment, files(tmp_path, 25), "--filter", "lark")
            plain = submit(deployment, files(tmp_path, 24, start=25))
            shutil.copy(HOSTILE, tmp_path / "hostile.jpg")
            hostile = submit(deployment, [tmp_path / "hostile.jpg"])
            settle(deployment, looked + plain + hostile)
            server.wait_for("sum(photopipe_photos_finished_total)", 50)
            _check_counts(server)
            _check_dashboard_and_rules(server)
        _check_logs(deployment, hostile[0])
    finally:
        deployment.stop_all()
        deployment.db.close()


def _check_counts(server: Prometheus) -> None:
    finished = server.by("sum by (status, code) (photopipe_photos_finished_total)", "code")
    assert finished == {"": 49, "truncated": 1}, finished
    assert server.scalar('sum(photopipe_photos_finished_total{status="ready"})') == 49
    for stage in RENDERED_STAGES:  # the hostile upload's decode raised: 49 completed each
        assert server.scalar(f"sum(photopipe_stage_{stage}_seconds_count)") == 49, stage
    assert server.scalar("sum(photopipe_stage_fetch_seconds_count)") == 50
    assert server.scalar("sum(photopipe_stage_look_seconds_count)") == 25
    assert server.by("sum by (look) (photopipe_render_cpu_seconds_count)", "look") == {
        "lark": 25, "none": 24}
    assert server.scalar("sum(photopipe_queue_wait_seconds_count)") == 50
    wait = server.scalar("sum(photopipe_queue_wait_seconds_sum)")
    assert wait is not None and 0 < wait < 50 * 120
    written = server.by("sum by (format) (photopipe_rendition_bytes_total)", "format")
    assert set(written) == {"jpg", "webp"} and all(v > 49 * 1000 for v in written.values())
    per_worker = server.by("sum by (instance) (photopipe_jobs_total)", "instance")
    assert len(per_worker) == 2 and sum(per_worker.values()) == 50, per_worker
    assert server.scalar("sum(photopipe_jobs_in_progress)") == 0
    assert server.scalar("sum(photopipe_worker_pool_size)") == 2
    ready = server.by("min by (check) (photopipe_ready)", "check")
    assert ready == {"broker": 1, "metadata": 1, "storage": 1, "replication": 1}
    server.wait_for('max(photopipe_queue_depth{queue="photopipe.photos"})', 0)
    server.wait_for("max(photopipe_backlog_photos)", 0)  # read at the scrape: a second behind


def _check_dashboard_and_rules(server: Prometheus) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    targets = [(panel["title"], target["expr"].replace("$__rate_interval", "1m")
                .replace("$instance", ".*"))
               for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(targets) > 25

    def empty() -> set[str]:  # server.query raises on an expression Prometheus refuses
        return {title for title, expr in targets if not server.query(expr)}

    # every panel shows data after the run (a rate needs two scrapes of a new series), but
    # retries (none happened), serve's (only workers are scraped here), webhooks' (none
    # configured here), standby lag and reads by role (the database here has no standby, and
    # reads from standbys are off)
    quiet = {"Retries by reason", "API requests", "API latency p95", "Uploads", "Webhooks",
             "Standby lag", "Standby replay lag", "Reads by role"}
    try:
        wait_until(lambda: empty() <= quiet, 15, "every panel to have data")
    except AssertionError:
        raise AssertionError(f"panels without data: {empty()}") from None

    def all_evaluated() -> bool:
        rules = [r for g in server.api("rules")["groups"] for r in g["rules"]]
        return len(rules) == 10 and all(r["health"] == "ok" and r.get("lastEvaluation", "")
                                       [:4] != "0001" for r in rules)

    wait_until(all_evaluated, 30, "every alert rule evaluated without error")
    firing = [a["labels"]["alertname"] for a in server.api("alerts")["alerts"]]
    assert firing == [], firing  # a healthy run raises nothing, not even pending


def _check_logs(deployment: Deployment, hostile: int) -> None:
    lines = []
    for log in sorted(deployment.logs.glob("worker-*.log")):
        for line in log.read_text().splitlines():
            if '"logger": "photopipe.jobs"' in line:
                lines.append(json.loads(line))
    assert len(lines) == 50 and {r["status"] for r in lines} == {"ready", "failed"}
    (failed,) = [r for r in lines if r["status"] == "failed"]
    assert (failed["photo_id"], failed["error_code"], failed["attempt"]) == (
        hostile, "truncated", 1)
    ready = [r for r in lines if r["status"] == "ready"]
    assert all(set(r["timings"]) >= set(RENDERED_STAGES) and r["bytes"]["jpg"] > 0 and
               r["queue_wait"] > 0 for r in ready)
    assert not any(re.search(r'"photo_id": \d+', json.dumps(r["message"])) for r in lines)
