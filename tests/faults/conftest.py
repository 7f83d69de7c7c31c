"""Fault scenarios: their deployments stopped after each test, and the report written at the
end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import write_report
from tests.workers.harness import Deployment


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    write_report()


@pytest.fixture
def stage() -> Iterator[list[Deployment]]:
    """Deployments made by a test, stopped afterwards whatever happened."""
    made: list[Deployment] = []
    yield made
    for deployment in made:
        deployment.stop_all()
        deployment.db.close()
