"""Publish jobs to the Celery queue, for :func:`pipeline.producer.submit`."""

from __future__ import annotations

from celery import Celery
from kombu.exceptions import KombuError, OperationalError

from pipeline.errors import BrokerUnavailable
from pipeline.jobs import Job
from workers.app import QUEUE, TASK, declare_topology


class CeleryPublisher:
    """Sends ``photopipe.process_photo(photo_id)``; with publisher confirms on RabbitMQ, returns
    only once the broker has the message."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._declared = False

    def publish(self, job: Job) -> None:
        try:
            if not self._declared:
                declare_topology(self.app)
                self._declared = True
            self.app.send_task(TASK, args=[job.photo_id], queue=QUEUE, retry=True)
        except (OperationalError, KombuError, ConnectionError, OSError) as exc:
            raise BrokerUnavailable(f"cannot publish photo {job.photo_id}: {exc}") from exc
