"""The Celery app, built from photopipe's settings.

Delivery is at least once and processing idempotent (see pipeline.jobs):

* late acknowledgement, and a job whose worker process dies is rejected back to the queue;
* a prefetch of one, so a busy worker holds no jobs another could run;
* publisher confirms (RabbitMQ): ``submit`` returns only once the broker has the job;
* on RabbitMQ, a quorum queue with a delivery limit: a job that keeps killing workers is
  dead-lettered to ``photopipe.photos.dead`` instead of looping;
* task time limits well below RabbitMQ's consumer timeout (30 minutes by default): the soft
  limit ends the render as ``TimedOut`` (recorded, retried within ``PHOTOPIPE_MAX_ATTEMPTS``);
  past the hard limit the process is killed and the message goes back to the queue, never acked
  unrecorded;
* the workers consume the dead-letter queue too, and put what arrives there back through the
  outbox while the photo has attempts left (the next start records the ending otherwise).

Redis works too (``redis://``): there the visibility timeout redelivers what a lost worker held,
and the photo row's attempts are the only bound.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from pipeline.settings import Settings

TASK = "photopipe.process_photo"
QUEUE = "photopipe.photos"
DEAD_QUEUE = "photopipe.photos.dead"
EXCHANGE = Exchange("photopipe", type="topic", durable=True)
DEAD_EXCHANGE = Exchange("photopipe.dead", type="topic", durable=True)
DELIVERY_LIMIT = 5


def is_amqp(broker_url: str) -> bool:
    return broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def photo_queue(broker_url: str) -> Queue:
    """The queue jobs go to: a quorum queue with a delivery limit on RabbitMQ."""
    if not is_amqp(broker_url):
        return Queue(QUEUE, EXCHANGE, routing_key=QUEUE)
    return Queue(QUEUE, EXCHANGE, routing_key=QUEUE, durable=True, queue_arguments={
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_EXCHANGE.name,
        "x-dead-letter-routing-key": DEAD_QUEUE,
    })


def dead_letter_queue() -> Queue:
    return Queue(DEAD_QUEUE, DEAD_EXCHANGE, routing_key=DEAD_QUEUE, durable=True,
                 queue_arguments={"x-queue-type": "quorum"})


def make_app(settings: Settings) -> Celery:
    """A Celery app publishing to and consuming from ``settings.broker_url``.

    Raises:
        ValueError: no broker is configured (jobs then run in-process, without Celery).
    """
    if not settings.broker_url:
        raise ValueError("PHOTOPIPE_BROKER_URL is not set")
    amqp = is_amqp(settings.broker_url)
    app = Celery("photopipe", broker=settings.broker_url, include=["workers.tasks"])
    app.conf.update(
        task_queues=[photo_queue(settings.broker_url)] + (
            [dead_letter_queue()] if amqp else []),
        task_default_queue=QUEUE,
        task_default_exchange=EXCHANGE.name,
        task_default_exchange_type="topic",
        task_default_routing_key=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure=False,
        task_acks_on_timeout=False,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=settings.soft_time_limit,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # A job running when the broker goes away finishes and records its ending; its message
        # comes back when the broker does, and the worker skips it as done.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # A publisher's connection gives up after one quick retry (the outbox keeps the job);
        # the worker's consumer reconnects on its own schedule (broker_connection_retry).
        broker_transport_options={
            "max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 1,
            **({"confirm_publish": True} if amqp
               else {"visibility_timeout": 2 * settings.task_time_limit})},
        task_publish_retry_policy={"max_retries": 5, "interval_start": 0.2,
                                   "interval_step": 0.5, "interval_max": 3},
    )
    return app


def consumed_queues(broker_url: str) -> list[str]:
    """The queues a worker consumes: the jobs, and on RabbitMQ the dead letters too."""
    return [QUEUE, DEAD_QUEUE] if is_amqp(broker_url) else [QUEUE]


def declare_topology(app: Celery) -> None:
    """Declare the queue, and on RabbitMQ the dead-letter exchange and queue it feeds."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        if is_amqp(app.conf.broker_url):
            dead_letter_queue()(channel).declare()
        photo_queue(app.conf.broker_url)(channel).declare()


def queue_depth(app: Celery, name: str = QUEUE) -> int:
    """Messages waiting in ``name`` (not counting those being processed)."""
    with app.connection_for_read() as connection:
        channel: Any = connection.default_channel
        if not is_amqp(app.conf.broker_url):
            # kombu's virtual transports (Redis) have no passive declare for an empty queue;
            # their channels count a queue's messages (priority sub-queues included) directly.
            return int(channel._size(name))
        return int(channel.queue_declare(name, passive=True).message_count)
