"""Metadata: the port, its records, and :func:`open_metadata` to pick an implementation.

A photo row moves ``queued -> processing -> ready | failed``; its renditions are replaced as a
whole when it becomes ready, so re-running a photo replaces rows instead of adding them. Every
implementation passes the same contract tests (tests/metadata/test_contract.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from pipeline.decode import SourceInfo
from pipeline.settings import Settings

Status = Literal["queued", "processing", "ready", "failed"]
STATUSES: tuple[Status, ...] = ("queued", "processing", "ready", "failed")


@dataclass(frozen=True)
class NewPhoto:
    """What is known of a photo when it is queued."""

    id: int
    source_key: str
    ladder: str = "default"
    filter: str | None = None
    strength: float = 1.0
    user_id: int | None = None


@dataclass(frozen=True)
class RenditionRow:
    """One stored rendition file."""

    name: str
    format: str
    key: str
    width: int
    height: int
    bytes: int


@dataclass(frozen=True)
class PhotoRow:
    """A photo's row as stored."""

    id: int
    status: Status
    source_key: str
    ladder: str
    filter: str | None
    strength: float
    user_id: int | None
    attempts: int
    source: SourceInfo | None
    error_code: str | None
    error_message: str | None
    created_at: str
    updated_at: str


def photo_from_row(row: Mapping[str, Any]) -> PhotoRow:
    """A :class:`PhotoRow` from a database row with the photos table's column names."""
    source = None
    if row["source_format"] is not None:
        source = SourceInfo(row["source_format"], row["source_width"], row["source_height"],
                            row["source_bytes"], row["source_frames"], row["orientation"])
    return PhotoRow(
        id=row["id"], status=row["status"], source_key=row["source_key"], ladder=row["ladder"],
        filter=row["filter"], strength=row["strength"], user_id=row["user_id"],
        attempts=row["attempts"], source=source, error_code=row["error_code"],
        error_message=row["error_message"], created_at=_timestamp(row["created_at"]),
        updated_at=_timestamp(row["updated_at"]))


def _timestamp(value: Any) -> str:
    """ISO 8601 text, from a datetime (PostgreSQL) or text already (SQLite)."""
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


class MetadataStore(Protocol):
    """Where photo and rendition rows live."""

    def upgrade(self) -> int:
        """Bring the schema up to date; return its version."""

    def allocate_id(self) -> int:
        """A new, time-ordered 64-bit photo id (41 bits of ms, 13 of shard, 10 of sequence)."""

    def create(self, photo: NewPhoto) -> None:
        """Insert ``photo`` as ``queued``, or re-queue the existing row with these options."""

    def start(self, photo_id: int) -> PhotoRow:
        """Mark the photo ``processing`` and count the attempt. Raises PhotoNotFound."""

    def finish(self, photo_id: int, source: SourceInfo,
               renditions: Sequence[RenditionRow]) -> None:
        """Mark the photo ``ready`` and replace its renditions, in one transaction."""

    def fail(self, photo_id: int, code: str, message: str) -> None:
        """Mark the photo ``failed`` with an error code and message; drop its renditions."""

    def get(self, photo_id: int) -> PhotoRow | None:
        """The photo's row, or None."""

    def renditions(self, photo_id: int) -> list[RenditionRow]:
        """The photo's renditions, in the order they were recorded (largest first)."""

    def counts(self) -> dict[str, int]:
        """How many photos are in each status (every status present, zeros included)."""

    def close(self) -> None:
        """Release the connection."""


def open_metadata(settings: Settings) -> MetadataStore:
    """The metadata store ``settings.database_url`` names (``sqlite:///path`` or
    ``postgresql://...``).

    Raises:
        ValueError: the URL's scheme is not one photopipe knows.
    """
    url = urlsplit(settings.database_url)
    if url.scheme == "sqlite":
        from pipeline.metadata.sqlite import SqliteMetadata

        return SqliteMetadata(url.path or ":memory:")
    if url.scheme in ("postgresql", "postgres"):
        from pipeline.metadata.postgres import PostgresMetadata

        return PostgresMetadata(settings.database_url)
    raise ValueError(f"unsupported PHOTOPIPE_DATABASE_URL scheme {url.scheme!r}")
