"""`photopipe reprocess` through RabbitMQ, two workers, PostgreSQL and S3 over HTTP (moto)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.core.spec import render_spec
from pipeline.jobs import Options
from pipeline.producer import resubmit
from pipeline.settings import Encoding, Settings
from tests.faults.harness import deploy, files, settle, submit
from tests.services import S3Server
from tests.workers.harness import ROOT, Deployment, wait_until
from workers.app import make_app
from workers.publisher import CeleryPublisher


@pytest.fixture
def deployment(amqp_url: str, postgres_url: str, moto: S3Server,
               tmp_path: Path) -> Iterator[Deployment]:
    deployed = deploy(tmp_path, amqp_url, postgres_url, moto)
    yield deployed
    deployed.stop_all()
    deployed.db.close()


def _reprocess(deployment: Deployment, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "reprocess", *args],
                            env=deployment.env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _commits(deployment: Deployment) -> Counter[str]:
    logs = "".join(p.read_text() for p in deployment.logs.glob("worker-*.log"))
    return Counter(re.findall(r"photo (\d+): ready", logs))


def _consistent(deployment: Deployment, ids: list[int]) -> None:
    """Every photo ready on one complete generation, its row's; every object has its row."""
    keys = []
    for photo_id in ids:
        row = deployment.db.get(photo_id)
        assert row is not None and row.status == "ready", row
        renditions = deployment.db.renditions(photo_id)
        assert renditions and all(f"/{row.generation}.{row.lease}/" in r.key
                                  for r in renditions), (row, renditions)
        keys += [r.key for r in renditions]
    assert sorted(deployment.store.list("photos/")) == sorted(keys)


def test_1000_photos_reprocessed_killed_half_way_and_resumed(deployment: Deployment,
                                                             tmp_path: Path) -> None:
    ids = submit(deployment, files(tmp_path, 1000, size=(160, 120)), "--ladder", "classic")
    deployment.start_worker()
    deployment.start_worker()
    settle(deployment, ids, 300)
    wait_until(lambda: sum(_commits(deployment).values()) == 1000, 30, "the first renders")
    command = ("--set-filter", "gingham", "--max-rate", "250", "--json")
    first = _reprocess(deployment, *command)
    wait_until(lambda: deployment.db.counts()["ready"] < 900, 60, "the run to get going")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    (run,) = deployment.db.runs()
    assert run.state == "running" and 0 < run.enqueued < 1000
    again = _reprocess(deployment, *command)  # the same command resumes the same run
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    summary = json.loads(out)
    assert (summary["run_id"], summary["state"], summary["done"], summary["failed"]) == (
        run.id, "done", 1000, {})
    spec = render_spec("classic", "gingham", 1.0, Encoding())
    for photo_id in ids:
        row = deployment.db.get(photo_id)
        assert row is not None and (row.filter, row.spec, row.generation) == (
            "gingham", spec, 2)
    _consistent(deployment, ids)
    wait_until(lambda: sum(_commits(deployment).values()) == 2000, 30, "every log line")
    assert set(_commits(deployment).values()) == {2}  # each photo rendered once by the run


def test_a_run_racing_web_tier_resubmissions_ends_on_the_newest_generation(
        deployment: Deployment, tmp_path: Path) -> None:
    ids = submit(deployment, files(tmp_path, 200, size=(160, 120)))
    deployment.start_worker()
    deployment.start_worker()
    settle(deployment, ids, 300)
    run = _reprocess(deployment, "--set-filter", "gingham", "--max-rate", "100", "--json")
    settings = Settings.from_env(deployment.env)
    publisher = CeleryPublisher(make_app(settings))
    time.sleep(0.5)
    for photo_id in ids[::4]:  # users pick another look while the run goes through
        resubmit(photo_id, Options(filter="rise"), deployment.db, publisher, settings)
        time.sleep(0.01)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    settle(deployment, ids, 120)
    _consistent(deployment, ids)
    looks = Counter(deployment.db.get(i).filter for i in ids)  # type: ignore[union-attr]
    assert set(looks) <= {"gingham", "rise"} and looks["gingham"] >= 150
    summary = json.loads(out)
    assert summary["done"] + summary["skipped"] == summary["enqueued"]
