"""The plain records that cross layers: what an upload declared, and what a job message says.

Kept apart from the decoder and the stores so that each layer can name them without loading the
others (the metadata stores need no Pillow, the workers no numpy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Photo ids count milliseconds from here (2025-01-01T00:00:00Z), in their top 41 bits.
EPOCH_MS = 1735689600000


@dataclass(frozen=True)
class SourceInfo:
    """What the upload declared, as stored (before orientation)."""

    format: str
    width: int
    height: int
    bytes: int
    frames: int
    orientation: int


@dataclass(frozen=True)
class Job:
    """What a queue message carries: the photo id and the generation to render, never the
    picture. A worker skips a job whose generation the photo has already moved past, or
    already finished."""

    photo_id: int
    generation: int = 0
    # When the job was committed to the outbox (seconds since the epoch, the database's
    # clock); the worker measures the job's queue wait from it. Not part of the job's identity.
    queued_at: float | None = field(default=None, compare=False)
