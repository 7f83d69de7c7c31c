"""A worker's pool process SIGKILLed mid-job, and then the whole worker killed and started
again on the same port: what the metrics already reported is neither lost nor counted twice,
and the in-progress gauge forgets the dead."""

from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.faults.harness import deploy, files, settle, submit
from tests.services import S3Server, free_port
from tests.workers.harness import Deployment, wait_until


def _scrape(port: int) -> dict[str, float]:
    """Each sample's value summed over its labels, by sample name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def _ready(port: int) -> float:
    try:
        return _scrape(port).get("photopipe_photos_finished_total", 0.0)
    except OSError:
        return -1.0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _lost(deployment: Deployment, ids: list[int]) -> bool:
    """Whether the worker's main process recorded a job lost with its pool process."""
    return any((row := deployment.db.get(i)) is not None and
               row.last_error_code == "worker_lost" for i in ids)


def _kill_mid_job(deployment: Deployment, worker: int, port: int, ids: list[int]) -> int:
    """SIGKILL the pool process while it renders a photo (Celery starts a new one); the pid
    killed. A job can end between the scrape that sees it running and the kill (a render
    takes tens of ms): then the kill lost nothing, and it is tried again on a later job."""
    for _ in range(3):
        wait_until(lambda: _ready(port) >= 2 and
                   _scrape(port).get("photopipe_jobs_in_progress") == 1, 120,
                   "two photos done and another in progress")
        before = _scrape(port)
        (child,) = _children(worker)
        os.kill(child, signal.SIGKILL)
        after_kill = _scrape(port)
        assert after_kill["photopipe_photos_finished_total"] >= \
            before["photopipe_photos_finished_total"]
        try:
            wait_until(lambda: _lost(deployment, ids), 10, "the job lost with the process")
            return child
        except AssertionError:
            continue
    raise AssertionError("three kills, none of them mid-job")


def test_killed_processes_neither_lose_nor_double_count(
        amqp_url: str, postgres_url: str, moto: S3Server, tmp_path: Path) -> None:
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto)
    port, directory = free_port(), tmp_path / "metrics"
    args = ("--metrics-port", str(port), "--metrics-host", "127.0.0.1")
    env = {"PHOTOPIPE_METRICS_DIR": str(directory)}
    try:
        worker = deployment.start_worker(*args, env=env)
        ids = submit(deployment, files(tmp_path, 8, size=(3000, 2000)))
        child = _kill_mid_job(deployment, worker.pid, port, ids)
        settle(deployment, ids, 180)
        wait_until(lambda: _scrape(port).get("photopipe_jobs_in_progress") == 0, 30,
                   "the dead process's job no longer in progress")
        done = _scrape(port)
        assert done["photopipe_photos_finished_total"] == 8
        assert done["photopipe_stage_record_seconds_count"] == 8  # the killed job: never
        assert done["photopipe_jobs_total"] == 8 and _children(worker.pid) != [child]
        attempts = sorted(row.attempts for i in ids if (row := deployment.db.get(i)))
        assert attempts == [1] * 7 + [2]  # the kill did land mid-job, once

        deployment.kill(worker)  # the whole worker, pool and all; then started again
        deployment.start_worker(*args, env=env)
        wait_until(lambda: _ready(port) >= 0, 60, "the restarted worker's endpoint")
        again = _scrape(port)
        assert again["photopipe_photos_finished_total"] == 8
        assert again["photopipe_jobs_in_progress"] == 0
        more = submit(deployment, files(tmp_path, 2, start=8))
        settle(deployment, ids + more, 120)
        wait_until(lambda: _ready(port) == 10, 30, "ten photos counted")
        assert _scrape(port)["photopipe_stage_record_seconds_count"] == 10
    finally:
        deployment.stop_all()
        deployment.db.close()
