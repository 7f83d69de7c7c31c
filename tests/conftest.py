"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.settings import Settings
from pipeline.storage.memory import MemoryStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings rooted in the test's own temporary folder."""
    return Settings(storage_url=f"file://{tmp_path / 'objects'}",
                    database_url=f"sqlite:///{tmp_path / 'photopipe.db'}")


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[SqliteMetadata]:
    db = SqliteMetadata(str(tmp_path / "meta.db"))
    yield db
    db.close()
