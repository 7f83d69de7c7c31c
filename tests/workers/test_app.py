"""The Celery app is configured for at-least-once delivery and idempotent processing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.settings import Settings
from workers.app import DEAD_QUEUE, DELIVERY_LIMIT, QUEUE, make_app, photo_queue

RABBIT = "amqp://guest:guest@127.0.0.1:5672//"
RABBIT_CONSUMER_TIMEOUT = 30 * 60  # RabbitMQ's default consumer_timeout, in seconds


def test_delivery_settings() -> None:
    conf = make_app(Settings(broker_url=RABBIT, task_time_limit=300)).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["confirm_publish"] is True
    assert conf.task_soft_time_limit < conf.task_time_limit < RABBIT_CONSUMER_TIMEOUT
    assert conf.task_default_queue == QUEUE
    # Never acked unrecorded: a hard time limit or a failure gives the message back.
    assert conf.task_acks_on_timeout is False and conf.task_acks_on_failure is False
    assert [q.name for q in conf.task_queues] == [QUEUE, DEAD_QUEUE]


@pytest.mark.parametrize(("limit", "soft"), [(300, 270), (60, 54), (31, 28), (10, 9), (2, 1)])
def test_the_soft_limit_leaves_the_job_time_to_record_its_ending(limit: int, soft: int) -> None:
    conf = make_app(Settings(broker_url=RABBIT, task_time_limit=limit)).conf
    assert (conf.task_time_limit, conf.task_soft_time_limit) == (limit, soft)


def test_rabbitmq_queue_is_quorum_with_a_delivery_limit_and_dead_letters() -> None:
    arguments = photo_queue(RABBIT).queue_arguments
    assert arguments == {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT,
                         "x-dead-letter-exchange": "photopipe.dead",
                         "x-dead-letter-routing-key": DEAD_QUEUE}


def test_redis_uses_a_visibility_timeout_past_the_time_limit() -> None:
    conf = make_app(Settings(broker_url="redis://127.0.0.1:6379/0", task_time_limit=120)).conf
    assert conf.broker_transport_options["visibility_timeout"] > 120
    assert not photo_queue("redis://127.0.0.1:6379/0").queue_arguments


def test_no_broker_no_app() -> None:
    with pytest.raises(ValueError, match="PHOTOPIPE_BROKER_URL"):
        make_app(Settings())


def test_workers_never_import_numpy_or_pil() -> None:
    for path in (Path(__file__).resolve().parents[2] / "workers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("numpy", "PIL", "filters") for n in names), path


def test_memory_goes_back_to_the_os_only_after_an_unusually_large_job(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOPIPE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    from workers import tasks

    trims: list[int] = []
    monkeypatch.setattr(tasks, "_MALLOC_TRIM", trims.append)
    assert tasks.resident_bytes() > 0  # this test process, read from /proc
    monkeypatch.setattr(tasks, "resident_bytes", lambda: tasks.TRIM_ABOVE_BYTES - 1)
    tasks.release_memory()
    assert trims == []
    monkeypatch.setattr(tasks, "resident_bytes", lambda: tasks.TRIM_ABOVE_BYTES + 1)
    tasks.release_memory()
    assert trims == [0]
