"""Publish jobs to the Celery queue, for :func:`pipeline.producer.submit` and the relay."""

from __future__ import annotations

from celery import Celery
from kombu.exceptions import KombuError, OperationalError

from pipeline.errors import BrokerUnavailable
from pipeline.records import Job
from workers.app import QUEUE, TASK, declare_topology

# What kombu and amqp raise when the broker is down, slow, or refuses a publish confirm.
BROKER_ERRORS = (OperationalError, KombuError, ConnectionError, OSError, TimeoutError)


class CeleryPublisher:
    """Sends ``photopipe.process_photo(photo_id, generation=g)``; with publisher confirms on
    RabbitMQ, returns only once the broker has the message."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._declared = False

    def publish(self, job: Job) -> None:
        try:
            if not self._declared:
                declare_topology(self.app)
                self._declared = True
            self.app.send_task(TASK, args=[job.photo_id],
                               kwargs={"generation": job.generation}, queue=QUEUE, retry=True)
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"cannot publish photo {job.photo_id}: {exc}") from exc
