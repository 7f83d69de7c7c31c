"""kombu's and amqp's errors are classified once, at the publisher: a test per class."""

from __future__ import annotations

import time

import pytest

from pipeline.errors import BrokerRejected, BrokerUnavailable
from pipeline.records import Job
from pipeline.settings import Settings
from tests.services import free_port
from workers.app import make_app
from workers.publisher import CeleryPublisher


def _publish(url: str) -> None:
    CeleryPublisher(make_app(Settings(broker_url=url))).publish(Job(1, 1))


@pytest.mark.parametrize("url", ["amqp://guest:wrong@127.0.0.1:5672//",
                                 "amqp://guest:guest@127.0.0.1:5672/no_such_vhost"])
def test_a_broker_that_refuses_photopipe_is_a_configuration_error(url: str) -> None:
    with pytest.raises(BrokerRejected, match="PHOTOPIPE_BROKER_URL"):
        _publish(url)


@pytest.mark.parametrize("scheme", ["amqp://guest:guest@", "redis://"])
def test_a_broker_that_is_down_is_transient_and_fails_fast(scheme: str) -> None:
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        _publish(f"{scheme}127.0.0.1:{free_port()}/0" if scheme == "redis://"
                 else f"{scheme}127.0.0.1:{free_port()}//")
    assert time.monotonic() - began < 10  # the outbox holds the job; nothing waits on it
