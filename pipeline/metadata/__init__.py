"""Metadata: the port (:mod:`~pipeline.metadata.port`), its implementations, and
:func:`open_metadata` to pick one.

Implementations: :mod:`~pipeline.metadata.sqlite` (the embedded default),
:mod:`~pipeline.metadata.postgres` (one database) and :mod:`~pipeline.metadata.shards` (logical
shards over several PostgreSQL databases, behind one catalog).

A photo row moves ``queued -> processing -> ready | failed`` (and back to ``queued`` when an
attempt is to be retried). Two counters on the row make racing renders safe:

* ``generation`` is bumped by every request to render the photo (a submit, a resubmission with
  other options). A job carries the generation it was queued for; a worker skips a job whose
  generation the photo has moved past, or has already finished.
* ``lease`` is bumped by every :meth:`MetadataStore.start`. A render's objects are written under
  keys that name its generation and lease, and :meth:`~MetadataStore.finish` and
  :meth:`~MetadataStore.fail` commit only while the lease is still the row's: of two renders
  racing, the later start wins, and the loser knows that its objects (and only those) are
  garbage.

Every request to render writes its job into an outbox in the same transaction as the row
(:meth:`~MetadataStore.create`); :meth:`~MetadataStore.relay` publishes unsent jobs, so a broker
outage or a crash after the commit delays a job and never loses it.

Every implementation passes the same contract tests (tests/metadata/test_contract.py).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pipeline.metadata.port import (
    STATUSES,
    Backlog,
    Claim,
    Event,
    MetadataStore,
    NewPhoto,
    PhotoRow,
    Publish,
    Reader,
    RenditionRow,
    Rerender,
    Run,
    Selection,
    Server,
    Standby,
    Status,
    UploadRow,
    Webhook,
    claim_of,
    photo_from_row,
    run_from_row,
)
from pipeline.settings import Settings

__all__ = [
    "STATUSES",
    "Backlog",
    "Claim",
    "Event",
    "MetadataStore",
    "NewPhoto",
    "PhotoRow",
    "Publish",
    "Reader",
    "RenditionRow",
    "Rerender",
    "Run",
    "Selection",
    "Server",
    "Standby",
    "Status",
    "UploadRow",
    "Webhook",
    "claim_of",
    "open_metadata",
    "photo_from_row",
    "run_from_row",
]


def open_metadata(settings: Settings) -> MetadataStore:
    """The metadata store ``settings.database_url`` names (``sqlite:///path`` or
    ``postgresql://...``).

    The implementations load here, on first use: the port needs none of them, and the embedded
    default needs no psycopg.

    Raises:
        ValueError: the URL's scheme is not one photopipe knows.
    """
    url = urlsplit(settings.database_url)
    if url.scheme == "sqlite":
        from pipeline.metadata.sqlite import SqliteMetadata

        return SqliteMetadata(url.path or ":memory:")
    if url.scheme in ("postgresql", "postgres"):
        # One database, or the catalog of a shard map (pipeline.metadata.shards) when it holds one.
        from pipeline.metadata.shards.store import ShardedMetadata

        return ShardedMetadata(settings.database_url,
                               statement_timeout_ms=settings.statement_timeout_ms,
                               lock_timeout_ms=settings.lock_timeout_ms,
                               standby_max_lag=settings.standby_max_lag
                               if settings.read_from_standbys else None)
    raise ValueError(f"unsupported PHOTOPIPE_DATABASE_URL scheme {url.scheme!r}")
