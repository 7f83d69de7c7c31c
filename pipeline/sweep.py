"""The sweeps: what nothing else would ever clean up or finish.

**gc** (``photopipe gc``): rendition objects that no row names and no render can still claim,
left by renders that crashed between writing their objects and their commit. An object is
garbage when its photo has no row, or its key is not among the photo's rendition rows and it
was written under an older lease than the row's (or under the row's own lease while no render
is running). An object of a render in progress is never touched.

**The stuck sweep** (every worker every ``PHOTOPIPE_STUCK_AFTER``/4 seconds, one at a time
across the fleet; ``photopipe sweep`` on demand): photos whose job the broker lost (a purged,
deleted or re-declared queue, a node that lost its disk) stay ``queued``, or ``processing``,
forever. At-least-once delivery needs a backstop that does not trust the broker: photos with no
job in the outbox that have waited longer than ``PHOTOPIPE_STUCK_AFTER`` (``processing`` ones
also longer than the task's hard time limit) get a new job for the same generation, which the
fencing makes harmless if the old one turns up after all. A photo merely waiting its turn is
not a lost one: the sweep queues only as many as the broker's queue lacks (such photos less
the messages it holds, the longest-waiting first), so a long queue gets no copies, and a
message a worker has just taken (neither in the queue nor yet ``processing``) one at most.
Each photo's wait restarts when it is queued again, so it is queued again at most once per
``PHOTOPIPE_STUCK_AFTER``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby

from pipeline.errors import PhotopipeError
from pipeline.jobs import lease_of
from pipeline.metadata import MetadataStore
from pipeline.records import Job
from pipeline.settings import Settings
from pipeline.storage import ObjectStore

log = logging.getLogger(__name__)
STUCK_TURN = "stuck"  # the fleet-wide turn of the stuck sweep
STUCK_LIMIT = 1000  # photos one pass looks at, at most: bounded work however many are stuck


@dataclass
class Swept:
    examined: int = 0
    orphans: list[str] = field(default_factory=list)
    deleted: int = 0


def sweep(store: ObjectStore, db: MetadataStore, *, delete: bool = True) -> Swept:
    """Find (and with ``delete``, remove) orphaned rendition objects, a photo at a time."""
    found = Swept()
    for photo_key, keys in groupby(store.list("photos/"), key=lambda k: k.split("/")[1]):
        listed = list(keys)
        found.examined += len(listed)
        if not photo_key.isdigit():
            continue
        orphans = _orphans(db, int(photo_key), listed)
        found.orphans += orphans
        if delete and orphans:
            store.delete_many(orphans)
            found.deleted += len(orphans)
    return found


def _orphans(db: MetadataStore, photo_id: int, keys: list[str]) -> list[str]:
    row = db.get(photo_id)
    if row is None:
        return keys
    named = {r.key for r in db.renditions(photo_id)}
    orphans = []
    for key in keys:
        lease = lease_of(key, photo_id)
        if key in named:
            continue
        older = lease is None or lease < row.lease
        if older or (lease == row.lease and row.status != "processing"):
            orphans.append(key)
    return orphans


@dataclass(frozen=True)
class Rescue:
    """What one pass of the stuck sweep found and did."""

    found: tuple[Job, ...] = ()  # photos with no job in the outbox, longest-waiting first
    requeued: tuple[Job, ...] = ()  # of those, the ones given a new job (the shortfall)
    waiting: int | None = None  # messages the broker held when asked (None: not asked)
    turn: bool = True  # False: another sweeper has the fleet's turn, nothing was looked at

    @property
    def held_back(self) -> bool:
        """Found some, queued none: the broker holds at least as many messages."""
        return bool(self.found) and self.waiting is not None and self.waiting >= len(self.found)


def interval(settings: Settings) -> float:
    """Seconds between two passes of the stuck sweep (and how long a pass holds the turn)."""
    return settings.stuck_after / 4


def rescue(db: MetadataStore, settings: Settings, waiting: Callable[[], int], *,
           holder: str | None = None, limit: int = STUCK_LIMIT,
           dry_run: bool = False) -> Rescue:
    """One pass of the stuck sweep.

    Args:
        waiting: how many messages the broker's queue holds now (0 without a broker); raises
            BrokerUnavailable when it cannot tell, and then nothing is queued. Only the
            photos beyond that many are queued again, the longest-waiting first.
        holder: who sweeps, to take the fleet's turn first (None: an operator's explicit
            ``photopipe sweep``, which runs whoever holds it).
        dry_run: find, and ask the broker, but queue nothing.
    """
    if holder is not None and not db.take_turn(STUCK_TURN, holder, interval(settings)):
        return Rescue(turn=False)
    processing_for = max(settings.stuck_after, float(settings.task_time_limit))
    found = tuple(db.stuck(settings.stuck_after, processing_for, limit))
    if not found:
        return Rescue()
    depth = waiting()
    missing = len(found) - depth
    if dry_run or missing <= 0:
        return Rescue(found, (), depth)
    requeued = db.requeue_stuck(found[:missing], settings.stuck_after, processing_for)
    return Rescue(found, tuple(requeued), depth)


def describe(result: Rescue, settings: Settings) -> str:
    """One log line for a pass that found something."""
    ids = " ".join(str(job.photo_id) for job in result.requeued[:20])
    more = f" and {len(result.requeued) - 20} more" if len(result.requeued) > 20 else ""
    if result.held_back:
        return (f"sweep: {len(result.found)} photos waited over {settings.stuck_after:g} s "
                f"with no job, and the broker holds {result.waiting} messages: held back")
    return (f"sweep: queued again {len(result.requeued)} of {len(result.found)} photos that no "
            f"job would render (the broker held {result.waiting}): {ids}{more}")


def run(settings: Settings, open_db: Callable[[], MetadataStore], waiting: Callable[[], int],
        stop: threading.Event, *, holder: str,
        report: Callable[[Rescue], None] = lambda result: None) -> None:
    """Sweep every :func:`interval` seconds until ``stop`` is set (a worker's thread), with a
    store of its own. Outages are logged and waited out; nothing but ``stop`` ends the loop."""
    db = open_db()
    try:
        while not stop.wait(interval(settings)):
            try:
                result = rescue(db, settings, waiting, holder=holder)
            except PhotopipeError as exc:
                log.warning("sweep: %s: %s", type(exc).__name__, exc)
                continue
            except Exception:  # a bug must not stop a worker's sweeper for good
                log.exception("sweep: unexpected error")
                continue
            report(result)
            if result.found:
                log.warning(describe(result, settings))
    finally:
        db.close()
