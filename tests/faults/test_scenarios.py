"""The production path under faults: real workers, real services, 100 photos a scenario, and
the invariant check at the end (tests/faults/harness.py). Services that are stopped or
restarted are private instances (tests/private.py); the shared servers are never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from pipeline.jobs import Options
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.producer import resubmit
from pipeline.settings import Settings
from tests import private
from tests.faults.harness import check, deploy, files, report, settle, submit
from tests.s3faults import FaultyS3
from tests.services import S3Server
from tests.workers.harness import Deployment, big_png, photo, wait_until
from workers.app import make_app
from workers.publisher import CeleryPublisher

N = 100


def _ready(deployment: Deployment) -> int:
    return deployment.db.counts()["ready"]


def test_rabbitmq_stopped_for_20_seconds_with_submits_during_the_outage(
        stage: list[Deployment], postgres_url: str, moto: S3Server, tmp_path: Path) -> None:
    with private.rabbit() as broker:
        deployment = deploy(tmp_path, broker.url, postgres_url, moto)
        stage.append(deployment)
        ids = submit(deployment, files(tmp_path, N // 2))
        deployment.start_worker()
        deployment.start_worker()
        wait_until(lambda: _ready(deployment) >= 10, 120, "the first photos")
        broker.pause()
        during = submit(deployment, files(tmp_path, N // 2, start=N // 2))  # exits 0
        assert deployment.db.outbox_size() >= 1  # committed, waiting for the broker
        time.sleep(20)
        broker.resume()
        settle(deployment, ids + during, 300)
        found = check(deployment, ids + during)
        report("RabbitMQ down 20 s", "private node: `rabbitmqctl stop_app`, 50 submits "
               "while down, `start_app`", "submits succeed into the outbox; the relay "
               "publishes them once the broker is back; workers reconnect", found)


def test_postgresql_restarted_immediately_under_workers_and_under_submit(
        stage: list[Deployment], amqp_url: str, moto: S3Server, tmp_path: Path) -> None:
    with private.postgres() as database:
        deployment = deploy(tmp_path, amqp_url, database.url, moto)
        stage.append(deployment)
        ids = submit(deployment, files(tmp_path, N // 2))
        deployment.start_worker()
        deployment.start_worker()
        wait_until(lambda: _ready(deployment) >= 10, 120, "the first photos")
        database.restart_immediately()  # under the workers
        paths = files(tmp_path, N // 2, start=N // 2)
        restarter = threading.Timer(0.5, database.restart_immediately)
        restarter.start()  # under a running submit
        during = submit(deployment, paths)
        restarter.join()
        deployment.db.close()  # the test's own connection died too
        settle(deployment, ids + during, 300)
        found = check(deployment, ids + during)
        report("PostgreSQL restarted", "private server: `pg_ctl -m immediate stop` and "
               "start, once under the workers and once during a 50-file submit",
               "submits retry the transient error; jobs wait it out without spending "
               "attempts", found)


def test_s3_errors_stalls_and_resets(stage: list[Deployment], amqp_url: str, postgres_url: str,
                                     moto: S3Server, tmp_path: Path) -> None:
    proxy = FaultyS3(moto.endpoint)
    try:
        deployment = deploy(tmp_path, amqp_url, postgres_url, moto, endpoint=proxy.url,
                            PHOTOPIPE_TASK_TIME_LIMIT="6")
        stage.append(deployment)
        ids = submit(deployment, files(tmp_path, N))
        deployment.start_worker()
        deployment.start_worker()
        wait_until(lambda: _ready(deployment) >= 10, 120, "the first photos")
        for fault, seconds in ((("error", 503, "SlowDown"), 8), (("error", 500, "InternalError"),
                                4), (("error", 429, "TooManyRequests"), 4), (("reset",), 3),
                               (("stall", 8), 8)):
            proxy.fault = fault
            time.sleep(seconds)
        proxy.fault = None
        settle(deployment, ids, 300)
        found = check(deployment, ids)
        assert proxy.injected > 20
        assert found.max_attempts <= 3  # outages spend none; a stall past the limit, one
        report("S3 errors, stall, resets", "HTTP proxy before moto: 503 SlowDown 8 s, 500 4 s, "
               "429 4 s (over ten backoff steps), resets 3 s, requests held 8 s (past the 5 s "
               "soft limit)", "outages retried with backoff without spending attempts; a "
               "stall past the soft limit is a `timeout` attempt, retried", found)
    finally:
        proxy.close()


def _pool_children(worker: subprocess.Popen[bytes]) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(worker.pid)], check=False, capture_output=True,
                         text=True)
    return [int(pid) for pid in out.stdout.split()]


def test_workers_sigterm_and_sigkill_mid_run(stage: list[Deployment], amqp_url: str,
                                             postgres_url: str, moto: S3Server,
                                             tmp_path: Path) -> None:
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto)
    stage.append(deployment)
    ids = submit(deployment, files(tmp_path, N, size=(1600, 1200)), "--filter", "clarendon")
    gentle, brutal = deployment.start_worker(), deployment.start_worker()
    wait_until(lambda: _ready(deployment) >= 15, 120, "the first photos")
    os.killpg(gentle.pid, signal.SIGTERM)  # warm shutdown: finishes its job, then exits
    deployment.kill(brutal)  # SIGKILL, mid-job
    assert gentle.wait(timeout=60) == 0
    deployment.start_worker()
    settle(deployment, ids, 300)
    found = check(deployment, ids, killed=1)
    assert found.max_attempts <= 2
    report("Workers stopped", "one worker SIGTERM (warm shutdown), one SIGKILL (process "
           "group) mid-job, a new worker started", "the warm one finishes its job; the "
           "killed job is redelivered and rendered again under a new lease; older leases' "
           "objects removed", found)


def test_a_poison_photo_killing_its_worker_every_time(stage: list[Deployment], amqp_url: str,
                                                      postgres_url: str, moto: S3Server,
                                                      tmp_path: Path) -> None:
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto, PHOTOPIPE_MAX_ATTEMPTS="3")
    stage.append(deployment)
    poison = tmp_path / "poison.png"
    poison.write_bytes(photo(99, size=(9000, 7000), fmt="PNG"))
    (poison_id,) = submit(deployment, [poison], "--filter", "rise")
    ids = submit(deployment, files(tmp_path, N))
    worker = deployment.start_worker()
    kills, stop = [0], threading.Event()
    watcher = PostgresMetadata(postgres_url)  # a connection of the killer's own

    def oom_killer() -> None:  # as the kernel's OOM killer would: SIGKILL the pool process
        seen = 0  # whenever it starts rendering the photo (the 4th start renders nothing:
        while not stop.is_set():  # it records the ending, and may be over before a poll)
            row = watcher.get(poison_id)
            if row is not None and row.status == "processing" and row.lease > seen and \
                    row.attempts <= 3:
                seen = row.lease
                for child in _pool_children(worker):
                    os.kill(child, signal.SIGKILL)
                kills[0] += 1
            time.sleep(0.02)

    killer = threading.Thread(target=oom_killer, daemon=True)
    killer.start()
    try:
        settle(deployment, [poison_id, *ids], 300)
    finally:
        stop.set()
        killer.join()
        watcher.close()
    found = check(deployment, [poison_id, *ids], {poison_id: "worker_lost"})
    assert kills[0] == 3 and worker.poll() is None  # the worker kept serving the others
    report("Poison photo", "the pool process SIGKILLed (as by the OOM killer) whenever it "
           "starts one photo; PHOTOPIPE_MAX_ATTEMPTS=3", "the main process records "
           "`worker_lost` and requeues; the 4th start fails the photo; the others are "
           "served meanwhile", found)


def test_a_job_over_its_time_limit_ends_as_timeout(stage: list[Deployment], amqp_url: str,
                                                   postgres_url: str, moto: S3Server,
                                                   tmp_path: Path) -> None:
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto, PHOTOPIPE_TASK_TIME_LIMIT="2",
                        PHOTOPIPE_MAX_ATTEMPTS="2", PHOTOPIPE_MAX_PIXELS=str(SLOW_PIXELS))
    stage.append(deployment)
    slow = tmp_path / "slow.png"
    slow.write_bytes(big_png(*SLOW))
    (slow_id,) = submit(deployment, [slow], "--filter", "rise")
    ids = submit(deployment, files(tmp_path, N))
    deployment.start_worker()
    deployment.start_worker()
    settle(deployment, [slow_id, *ids], 300)
    found = check(deployment, [slow_id, *ids], {slow_id: "timeout"})
    row = deployment.db.get(slow_id)
    # Two renders: each ends at the soft limit (recorded by the job) or, if the pool's timer
    # is late, at the hard one (recorded by the worker's main process, then requeued, and the
    # third start fails the photo without rendering).
    assert row is not None and row.attempts in (2, 3)
    assert "time limit" in (row.error_message or "")
    report("Over the time limit", "PHOTOPIPE_TASK_TIME_LIMIT=2 (soft 1 s), one 250 MP PNG "
           "that takes over 2 s to render alone; PHOTOPIPE_MAX_ATTEMPTS=2",
           "each attempt ends at the soft or "
           "the hard limit and is recorded as `timeout`; retried once, then `failed` with "
           "`timeout`; never `corrupt`", found)


SLOW = (20_000, 12_500)  # 250 MP: over 2 s to decode and render alone, twice the soft limit
SLOW_PIXELS = SLOW[0] * SLOW[1]


def test_two_renders_of_each_photo_racing_with_different_ladders(
        stage: list[Deployment], amqp_url: str, postgres_url: str, moto: S3Server,
        tmp_path: Path) -> None:
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto)
    stage.append(deployment)
    ids = submit(deployment, files(tmp_path, N, size=(1600, 1200)))
    deployment.start_worker()
    deployment.start_worker()
    wait_until(lambda: deployment.db.counts()["processing"] >= 1, 60, "a render to start")
    settings = Settings.from_env(deployment.env)
    publisher = CeleryPublisher(make_app(settings))
    for photo_id in ids:  # the web tier: the user picked another ladder, mid-render
        resubmit(photo_id, Options("classic", "gingham"), deployment.db, publisher, settings)
    settle(deployment, ids, 300)
    found = check(deployment, ids)
    for photo_id in ids:
        row = deployment.db.get(photo_id)
        assert row is not None and (row.generation, row.ladder, row.filter) == (
            2, "classic", "gingham")
        assert sorted(r.name for r in deployment.db.renditions(photo_id)) == [
            "sq150", "sq306", "sq612"]
    report("Racing renders", "each of 100 photos resubmitted with another ladder and look "
           "while the first renders run", "the newer generation wins every race; losers "
           "delete only their own objects; stale jobs are skipped", found)
