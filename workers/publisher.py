"""Publish jobs to the Celery queue, for :func:`pipeline.producer.submit` and the relay."""

from __future__ import annotations

from amqp.exceptions import AccessRefused, NotAllowed
from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import AuthenticationError, AuthorizationError

from pipeline.errors import BrokerRejected, BrokerUnavailable
from pipeline.records import Job
from workers.app import QUEUE, TASK, declare_topology

# What the broker's clients raise when it refuses photopipe itself: credentials, a vhost that
# does not exist, no permission (amqp's AccessRefused, NotAllowed; Redis's AUTH and ACL errors).
BROKER_REFUSALS = (AccessRefused, NotAllowed, AuthenticationError, AuthorizationError)
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
            # No retries here: the job is safe in the outbox, and the relay tries again.
            kwargs: dict[str, float] = {"generation": job.generation}
            if job.queued_at is not None:
                kwargs["queued"] = job.queued_at
            self.app.send_task(TASK, args=[job.photo_id], kwargs=kwargs, queue=QUEUE,
                               retry=False)
        except BROKER_REFUSALS as exc:
            raise BrokerRejected(f"the broker refused photopipe: {type(exc).__name__}: {exc} "
                                 "(check PHOTOPIPE_BROKER_URL)") from exc
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"cannot publish photo {job.photo_id}: {exc}") from exc
