"""Batch reprocessing: re-render many photos safely, resumably, beside live traffic.

A run is durable (a row in the metadata store: selection, changes, cursor, state). It walks the
selection by keyset pagination, and for each batch, in one transaction, gives every photo a new
generation with its new options, puts its job in the outbox and moves the cursor. So a run
killed at any point and started again continues where it stopped, renders no photo twice
(workers skip generations already finished or superseded) and skips none; a web-tier
resubmission during the run simply becomes the newest generation, and wins. The old
generation's objects are deleted by the render that replaces them, after its commit.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from pipeline.core.spec import render_spec
from pipeline.metadata import MetadataStore, PhotoRow, Rerender, Run, Selection
from pipeline.records import Job
from pipeline.settings import Encoding

BATCH = 500


@dataclass(frozen=True)
class Changes:
    """What a run changes; None keeps each photo's own value (``look="none"`` removes it)."""

    look: str | None = None
    strength: float | None = None
    ladder: str | None = None

    def apply(self, row: PhotoRow) -> Rerender:
        look = row.filter if self.look is None else (None if self.look == "none" else self.look)
        return Rerender(row.id, self.ladder or row.ladder, look,
                        row.strength if self.strength is None else self.strength)


@dataclass(frozen=True)
class Request:
    """A reprocessing request: which photos, what changes, only the stale ones or all."""

    selection: Selection = field(default_factory=Selection)
    changes: Changes = field(default_factory=Changes)
    stale: bool = False

    @property
    def key(self) -> str:
        """The same request gets the same key: running it again resumes its unfinished run."""
        return hashlib.sha256(self.describe().encode()).hexdigest()[:16]

    def describe(self) -> str:
        return json.dumps({"selection": asdict(self.selection), "changes": asdict(self.changes),
                           "stale": self.stale}, sort_keys=True)

    def wants(self, row: PhotoRow, encoding: Encoding) -> bool:
        """Whether ``row`` is selected (``--stale``: rendered ready with a spec other than the
        one its new options would have)."""
        if not self.stale:
            return True
        target = self.changes.apply(row)
        return row.status == "ready" and row.spec != render_spec(
            target.ladder, target.filter, target.strength, encoding)


def scan(db: MetadataStore, request: Request, encoding: Encoding, *, after: int = 0,
         batch: int = BATCH) -> Iterator[tuple[list[PhotoRow], int]]:
    """The selection in batches: (the rows wanted, the last id scanned), flat in memory. Read
    where staleness is harmless (a standby, when reads may go to one): a photo newer than
    the standby's bound is not selected, as if it had been uploaded after the run began."""
    reads = db.reader()
    while rows := reads.scan(request.selection, after, batch):
        after = rows[-1].id
        yield [r for r in rows if request.wants(r, encoding)], after
        if len(rows) < batch:
            return


@dataclass
class DryRun:
    """What a run would take, and an estimate of its work."""

    photos: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_look: Counter[str] = field(default_factory=Counter)
    sample: list[int] = field(default_factory=list)
    source_bytes: int = 0
    source_pixels: int = 0

    def add(self, row: PhotoRow) -> None:
        self.photos += 1
        self.by_status[row.status] += 1
        self.by_look[row.filter or "none"] += 1
        if len(self.sample) < 10:
            self.sample.append(row.id)
        if row.source is not None:
            self.source_bytes += row.source.bytes
            self.source_pixels += row.source.width * row.source.height


def dry_run(db: MetadataStore, request: Request, encoding: Encoding) -> DryRun:
    """Count what ``request`` selects, changing nothing."""
    found = DryRun()
    for rows, _ in scan(db, request, encoding):
        for row in rows:
            found.add(row)
    return found


@dataclass(frozen=True)
class Pace:
    """How fast a run may enqueue: photos per second, and the most jobs waiting at once."""

    max_rate: float | None = None
    max_queue_depth: int | None = None
    depth: Callable[[], int] | None = None  # jobs waiting now (broker queue + outbox)
    poll: float = 0.5


def start(db: MetadataStore, request: Request, mode: str, resume: int | None = None) -> Run:
    """The run to continue: ``resume`` by id, else the unfinished run of the same request,
    else a new one.

    Raises:
        LookupError: no run ``resume``, or it has ended.
    """
    if resume is not None:
        run = db.get_run(resume)
        if run is None or run.state != "running":
            raise LookupError(f"no unfinished run {resume}")
        return run
    return db.find_run(request.key) or db.create_run(
        request.key, json.dumps(asdict(request.selection)), request.describe(), mode)


def enqueue(db: MetadataStore, run: Run, request: Request, encoding: Encoding, pace: Pace, *,
            local: bool, on_batch: Callable[[list[Job]], None]) -> None:
    """Walk the selection from the run's cursor, a batch at a time at the pace allowed; each
    batch's generations, jobs (unless ``local``) and cursor commit together. ``on_batch`` gets
    each batch's jobs (to render them in-process, or to show progress)."""
    began, sent = time.monotonic(), 0
    for rows, last in scan(db, request, encoding, after=run.cursor,
                           batch=_batch_size(pace)):
        _wait(pace, began, sent, len(rows))
        jobs = db.regenerate(run.id, [request.changes.apply(r) for r in rows], cursor=last,
                             enqueue=not local)
        sent += len(jobs)
        on_batch(jobs)


def _batch_size(pace: Pace) -> int:
    if pace.max_rate is None:
        return BATCH
    return max(1, min(BATCH, int(pace.max_rate)))


def _wait(pace: Pace, began: float, sent: int, coming: int) -> None:
    """Sleep until ``coming`` more photos fit both the rate and the queue's depth."""
    if pace.max_rate is not None:
        ahead = (sent + coming) / pace.max_rate - (time.monotonic() - began)
        if ahead > 0 and sent:
            time.sleep(ahead)
    if pace.max_queue_depth is not None and pace.depth is not None:
        while pace.depth() > pace.max_queue_depth:
            time.sleep(pace.poll)


@dataclass(frozen=True)
class Summary:
    """How a run's photos stand."""

    run: Run
    done: int
    failed: dict[str, int]
    pending: int
    skipped: int

    def as_json(self) -> dict[str, object]:
        return {"run_id": self.run.id, "state": self.run.state, "enqueued": self.run.enqueued,
                "done": self.done, "failed": self.failed, "pending": self.pending,
                "skipped": self.skipped}


def summary(db: MetadataStore, run_id: int) -> Summary:
    """The run's photos by outcome: done, failed (by code), still pending, and skipped (taken
    over by a newer request before they rendered)."""
    run = db.get_run(run_id)
    if run is None:
        raise LookupError(f"no run {run_id}")
    tally = db.tally(run_id)
    done = sum(n for (status, _), n in tally.items() if status == "ready")
    failed: Counter[str] = Counter()
    for (status, code), n in tally.items():
        if status == "failed":
            failed[code or "failed"] += n
    pending = sum(n for (status, _), n in tally.items() if status in ("queued", "processing"))
    return Summary(run, done, dict(failed), pending,
                   max(0, run.enqueued - done - sum(failed.values()) - pending))
