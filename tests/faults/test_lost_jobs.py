"""Jobs the broker lost: the queue purged, or deleted and re-declared, after the relay handed
the jobs over. Nothing in the outbox, nothing in the queue, the photos ``queued``: the stuck
sweep of the workers queues them again, and each is rendered once. And its counterpart: photos
merely waiting in a long queue are not copied into it. Private RabbitMQ nodes where the queue
is purged or deleted; the invariant check of tests/faults/harness.py at the end."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from pipeline.settings import Settings
from tests import private
from tests.faults.harness import check, deploy, files, report, settle, submit
from tests.services import S3Server
from tests.workers.harness import Deployment, wait_until
from workers.app import QUEUE, declare_topology, make_app

LOST = 20
STUCK_AFTER = 6.0  # PHOTOPIPE_STUCK_AFTER: the workers sweep every 1.5 s
INTERVAL = STUCK_AFTER / 4


def requeued(deployment: Deployment) -> Counter[int]:
    """How often the workers' sweeps queued each photo again, from their log lines."""
    logs = "".join(p.read_text(errors="replace") for p in deployment.logs.glob("worker-*.log"))
    found: Counter[int] = Counter()
    for line in re.findall(r"sweep: queued again \d+ of \d+ photos[^:]*: ([\d ]*)", logs):
        found.update(int(i) for i in line.split())
    return found


def lose_and_recover(deployment: Deployment, tmp_path: Path, lose: object) -> list[int]:
    """Submit with no worker, lose every job at the broker, then start two workers: all end
    ready within a sweep interval of the workers (the photos have waited long enough)."""
    ids = submit(deployment, files(tmp_path, LOST))
    assert deployment.status()["queue"]["depth"] == LOST
    lose()  # type: ignore[operator]
    status = deployment.status()
    assert (status["queue"]["depth"], status["queue"]["outbox"]) == (0, 0)
    assert status["photos"]["queued"] == LOST
    wait_until(lambda: deployment.status()["stuck"] == LOST, STUCK_AFTER + 30,
               "photopipe status to show the photos stuck")
    deployment.start_worker()
    deployment.start_worker()
    # a worker's start (~5 s here), a sweep interval, the relay's second, the renders
    settle(deployment, ids, INTERVAL + 60)
    assert requeued(deployment) == Counter(ids)  # each queued again exactly once
    assert deployment.status()["stuck"] == 0
    return ids


def test_a_purged_queue(stage: list[Deployment], postgres_url: str, moto: S3Server,
                        tmp_path: Path) -> None:
    with private.rabbit() as broker:
        deployment = deploy(tmp_path, broker.url, postgres_url, moto,
                            PHOTOPIPE_STUCK_AFTER=str(STUCK_AFTER))
        stage.append(deployment)
        ids = lose_and_recover(deployment, tmp_path,
                               lambda: broker.ctl("purge_queue", QUEUE))
        found = check(deployment, ids)
    report("Queue purged", f"private node: {LOST} submits with no worker, then "
           "`rabbitmqctl purge_queue`; PHOTOPIPE_STUCK_AFTER=6, two workers started",
           "`photopipe status` shows them stuck; the workers' sweep queues each again once "
           "through the outbox; each rendered once", found)


def test_a_queue_deleted_and_declared_again(stage: list[Deployment], postgres_url: str,
                                            moto: S3Server, tmp_path: Path) -> None:
    with private.rabbit() as broker:
        deployment = deploy(tmp_path, broker.url, postgres_url, moto,
                            PHOTOPIPE_STUCK_AFTER=str(STUCK_AFTER))
        stage.append(deployment)

        def delete_and_declare() -> None:
            broker.ctl("delete_queue", QUEUE)
            declare_topology(make_app(Settings.from_env(deployment.env)))

        ids = lose_and_recover(deployment, tmp_path, delete_and_declare)
        found = check(deployment, ids)
    report("Queue deleted, declared again", f"private node: {LOST} submits with no worker, "
           "then `rabbitmqctl delete_queue` and the queue declared anew",
           "as for a purge: each queued again once by the sweep, rendered once", found)


def test_a_long_queue_is_not_copied_into(stage: list[Deployment], amqp_url: str,
                                         postgres_url: str, moto: S3Server,
                                         tmp_path: Path) -> None:
    """Photos waiting in the queue longer than PHOTOPIPE_STUCK_AFTER (3 s here, a sweep every
    0.75 s) while one worker of one process works through them: the sweep sees them on each
    pass and holds back, since the broker holds their messages."""
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto, PHOTOPIPE_STUCK_AFTER="3")
    stage.append(deployment)
    # enough work for several sweep passes while the queue drains: a 4 MP render takes about
    # 0.08 s here, and 24 of them were once done between two passes
    ids = submit(deployment, files(tmp_path, 60, size=(2400, 1800)), "--filter", "clarendon")
    wait_until(lambda: deployment.status()["stuck"] == len(ids), 30,
               "every photo waiting past PHOTOPIPE_STUCK_AFTER, its message in the queue")
    deployment.start_worker()
    settle(deployment, ids, 240)
    found = check(deployment, ids)
    logs = "".join(p.read_text(errors="replace") for p in deployment.logs.glob("worker-*.log"))
    assert len(re.findall(r"the broker holds \d+ messages: held back", logs)) >= 2, logs[-3000:]
    again = requeued(deployment)
    assert all(n == 1 for n in again.values()), again  # never queued again twice
    assert sum(again.values()) <= 2, again  # at most a message a worker had just taken
    report("A long queue", "60 photos of 4 MP with a look queued, waiting past "
           "PHOTOPIPE_STUCK_AFTER=3, then one worker of one process", "each sweep pass finds "
           "them and holds back (the broker holds their messages): "
           f"{sum(again.values())} queued again", found)
