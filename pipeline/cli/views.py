"""What the CLI prints: JSON documents (a contract with scripts) and one-line summaries."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.metadata import PhotoRow, RenditionRow
from pipeline.settings import Settings


@dataclass(frozen=True)
class Outcome:
    """What became of one input of ``photopipe process``."""

    path: Path
    row: PhotoRow | None
    renditions: list[RenditionRow]
    error: tuple[str, str] | None = None
    photo_id: int | None = None  # known even when the row cannot be read

    @property
    def ok(self) -> bool:
        return self.error is None and self.row is not None and self.row.status == "ready"

    @property
    def failure(self) -> tuple[str, str] | None:
        """(code, message) when the input did not render."""
        if self.error is not None:
            return self.error
        if self.row is not None and self.row.status == "failed":
            return self.row.error_code or "failed", self.row.error_message or ""
        return None


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """The ``--json`` object of ``photopipe process``: one per input."""
    failure = outcome.failure
    return {
        "path": str(outcome.path),
        "photo_id": outcome.row.id if outcome.row else outcome.photo_id,
        "status": "ready" if outcome.ok else "failed",
        "error": {"code": failure[0], "message": failure[1]} if failure else None,
        "renditions": [rendition_json(r) for r in outcome.renditions],
    }


def outcome_line(outcome: Outcome) -> str:
    """One human line per input."""
    failure = outcome.failure
    if failure is not None or outcome.row is None:
        code, message = failure or ("failed", "")
        return f"{outcome.path}: failed ({code}) {message}"
    sizes = ", ".join(f"{r.name}.{r.format} {r.width}x{r.height}" for r in outcome.renditions)
    return f"{outcome.path}: ready, photo {outcome.row.id}: {sizes}"


def rendition_json(rendition: RenditionRow) -> dict[str, Any]:
    return {"name": rendition.name, "format": rendition.format, "key": rendition.key,
            "width": rendition.width, "height": rendition.height, "bytes": rendition.bytes}


def photo_json(row: PhotoRow, renditions: list[RenditionRow]) -> dict[str, Any]:
    """The ``--json`` document of ``photopipe show``: the whole row and its renditions."""
    document = dataclasses.asdict(row)
    document["placeholder"] = None if row.placeholder is None else json.loads(row.placeholder)
    document["renditions"] = [rendition_json(r) for r in renditions]
    return document


def photo_text(row: PhotoRow, renditions: list[RenditionRow]) -> str:
    """``photopipe show`` for a person."""
    lines = [f"photo {row.id}: {row.status} (attempts {row.attempts}, updated {row.updated_at})",
             f"  look {row.filter or 'none'} at {row.strength:g}, ladder {row.ladder}",
             f"  original {row.source_key}"]
    if row.source is not None:
        s = row.source
        lines.append(f"  source {s.format} {s.width}x{s.height}, {s.bytes} bytes, "
                     f"{s.frames} frame(s), orientation {s.orientation}")
    if row.placeholder is not None:
        shown = json.loads(row.placeholder)
        lines.append(f"  placeholder {shown['color']}, aspect {shown['aspect']:g}, "
                     f"thumbhash {shown['thumbhash']}")
    if row.error_code:
        lines.append(f"  error {row.error_code}: {row.error_message}")
    lines += [f"  {r.name}.{r.format} {r.width}x{r.height} {r.bytes} B -> {r.key}"
              for r in renditions]
    return "\n".join(lines)


def storage_location(settings: Settings) -> str:
    """Where the object store keeps its files, for people (a directory when it is local)."""
    url = urlsplit(settings.storage_url)
    return url.path if url.scheme == "file" else settings.storage_url
