"""Fault scenarios write their report at the end of the run."""

from __future__ import annotations

import pytest

from tests.faults.harness import write_report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    write_report()
