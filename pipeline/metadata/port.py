"""The metadata port: the records a store reads and writes, and the store's protocol.

Every implementation (:mod:`~pipeline.metadata.sqlite`, :mod:`~pipeline.metadata.postgres`,
:mod:`~pipeline.metadata.shards`) takes its records from here, a module that imports none of
them back; :func:`pipeline.metadata.open_metadata` picks one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pipeline.records import Job, SourceInfo

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
    generation: int = 0
    lease: int = 0
    last_error_code: str | None = None
    last_error_message: str | None = None
    spec: str | None = None
    run_id: int | None = None
    placeholder: str | None = None  # JSON: thumbhash, color, aspect (the render core's)


@dataclass(frozen=True)
class Selection:
    """Which photos a reprocessing run takes (every field narrows it; empty takes all)."""

    from_id: int | None = None  # inclusive
    to_id: int | None = None  # inclusive
    statuses: tuple[Status, ...] = ()
    user_id: int | None = None
    look: str | None = None  # a look's name, or "none" for photos rendered without one


@dataclass(frozen=True)
class Rerender:
    """A photo to render again, with the options it is to have."""

    photo_id: int
    ladder: str
    filter: str | None
    strength: float


@dataclass(frozen=True)
class Run:
    """A reprocessing run as stored: what it selects and changes, how far it got."""

    id: int
    key: str
    selection: str  # JSON
    changes: str  # JSON
    mode: str
    state: Literal["running", "done", "cancelled"]
    cursor: int
    enqueued: int
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Backlog:
    """What waits to be rendered, for autoscaling: photos ``queued`` (new, requeued, or
    between retries) and jobs not yet on the broker, each with the age of its oldest."""

    queued: int
    oldest_queued: float | None  # seconds since the longest-waiting photo was queued
    outbox: int
    oldest_outbox: float | None  # seconds since the oldest unsent job was committed
    # Seconds since the longest-waiting ``queued`` photo with no job in the outbox was queued:
    # its job is on the broker, or lost (what the stuck sweep finds after a while).
    oldest_without_job: float | None = None


@dataclass(frozen=True)
class Standby:
    """One standby of a database server, as its primary sees it (``pg_stat_replication``)."""

    name: str  # its application_name (Patroni's member name)
    address: str | None
    state: str  # streaming, catchup, ...
    sync_state: str  # sync, quorum, potential, async
    lag_bytes: int | None  # WAL the primary has written that the standby has not replayed
    replay_lag: float | None  # seconds (PostgreSQL's replay_lag; None when idle)

    @property
    def synchronous(self) -> bool:
        """A standby a COMMIT waits for now."""
        return self.state == "streaming" and self.sync_state in ("sync", "quorum")


@dataclass(frozen=True)
class Server:
    """A database server photopipe writes to: its URL, the primary that answered, its
    standbys. ``ha`` when the URL lists more than one host (a cluster that must always have a
    synchronous standby)."""

    url: str
    primary: str
    standbys: tuple[Standby, ...]
    ha: bool

    @property
    def synchronous(self) -> bool:
        return any(s.synchronous for s in self.standbys)


@dataclass(frozen=True)
class UploadRow:
    """A resumable upload as stored: whose, until when (seconds since the epoch), its version
    (every change bumps it: writers compare and set), and its state, which only the uploads use
    case reads (JSON)."""

    photo_id: int
    user_id: int
    expires: float
    version: int
    state: str


Event = Literal["photo.ready", "photo.failed", "photo.deleted"]


@dataclass(frozen=True)
class Webhook:
    """A photo's ending waiting to be told to the web tier (an entry of the webhook outbox)."""

    id: int
    photo_id: int
    user_id: int | None
    generation: int
    event: Event
    attempts: int  # deliveries tried so far
    age: float  # seconds since the ending was recorded (the database's clock)


@dataclass(frozen=True)
class Claim:
    """What :meth:`MetadataStore.start` made of a job: a lease to render under, or a skip."""

    row: PhotoRow
    skipped: Literal["superseded", "done"] | None = None

    @property
    def lease(self) -> int:
        return self.row.lease


def photo_from_row(row: Mapping[str, Any]) -> PhotoRow:
    """A :class:`PhotoRow` from a database row with the photos table's column names."""
    source = None
    if row["source_format"] is not None:
        source = SourceInfo(row["source_format"], row["source_width"], row["source_height"],
                            row["source_bytes"], row["source_frames"], row["orientation"])
    return PhotoRow(
        id=row["id"], status=row["status"], source_key=row["source_key"], ladder=row["ladder"],
        filter=row["filter"], strength=float(row["strength"]), user_id=row["user_id"],
        attempts=row["attempts"], source=source, error_code=row["error_code"],
        error_message=row["error_message"], created_at=_timestamp(row["created_at"]),
        updated_at=_timestamp(row["updated_at"]), generation=row["generation"],
        lease=row["lease"], last_error_code=row["last_error_code"],
        last_error_message=row["last_error_message"], spec=row["spec"], run_id=row["run_id"],
        placeholder=row["placeholder"])


def run_from_row(row: Mapping[str, Any]) -> Run:
    """A :class:`Run` from a row of the reprocess_runs table."""
    return Run(int(row["id"]), row["key"], row["selection"], row["changes"], row["mode"],
               row["state"], int(row["cursor"]), int(row["enqueued"]),
               _timestamp(row["created_at"]), _timestamp(row["updated_at"]))


def claim_of(row: PhotoRow, job: Job) -> Claim | None:
    """The skip a job gets from the row as it is, or None when the job should render."""
    if row.generation > job.generation:
        return Claim(row, "superseded")
    if row.status in ("ready", "failed") and row.generation == job.generation:
        return Claim(row, "done")
    return None


def _timestamp(value: Any) -> str:
    """ISO 8601 text, from a datetime (PostgreSQL) or text already (SQLite)."""
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


Publish = Callable[[Job], None]


class Reader(Protocol):
    """The reads where a little staleness is harmless, which a standby may serve (see
    :meth:`MetadataStore.reader`): each as :class:`MetadataStore` has it."""

    def get(self, photo_id: int) -> PhotoRow | None: ...

    def renditions(self, photo_id: int) -> list[RenditionRow]: ...

    def counts(self) -> dict[str, int]: ...

    def backlog(self) -> Backlog: ...

    def photos_of(self, user_id: int, before: int | None, limit: int) -> list[PhotoRow]: ...

    def scan(self, selection: Selection, after: int, limit: int) -> list[PhotoRow]: ...


class MetadataStore(Protocol):
    """Where photo and rendition rows, and the outbox of unsent jobs, live."""

    def upgrade(self) -> int:
        """Bring the schema up to date; return its version."""

    def allocate_id(self, user_id: int | None = None) -> int:
        """A new, time-ordered 64-bit photo id (41 bits of ms, 13 of shard, 10 of sequence);
        sharded, on the logical shard ``user_id`` is placed on (so a user's photos live
        together)."""

    def create(self, photo: NewPhoto, *, enqueue: bool = True,
               idempotency_key: str | None = None) -> Job:
        """Insert ``photo`` as ``queued`` (or re-queue the existing row with these options, as
        a new generation with its attempts reset), and with ``enqueue`` put its job in the
        outbox, in one transaction. Returns the job to render.

        With ``idempotency_key`` (and the photo's ``user_id``), the key is recorded for the
        photo in the same transaction; if the user's key names a photo already, nothing is
        written and that photo's current job is returned (its id is not ``photo.id``)."""

    def keyed(self, user_id: int, key: str) -> int | None:
        """The photo the user's idempotency key names, if any."""

    def count_upload(self, user_id: int) -> tuple[int, float]:
        """Count one upload of the user in the current minute (the database's clock); return
        how many this minute holds now, and the seconds until the next one begins."""

    def start(self, job: Job, *, refund: int | None = None) -> Claim:
        """Take a new lease on the photo for ``job``: ``processing``, one more attempt (none
        when ``refund`` is the current lease: that attempt only waited out an outage).

        A job for an older generation, or for one already ``ready``/``failed``, is skipped and
        changes nothing. Raises PhotoNotFound.
        """

    def finish(self, photo_id: int, lease: int, source: SourceInfo,
               renditions: Sequence[RenditionRow], spec: str | None = None, *,
               notify: bool = False, placeholder: str | None = None
               ) -> list[RenditionRow] | None:
        """Mark the photo ``ready`` with these renditions (rendered to ``spec``, and with its
        ``placeholder`` when given), in one transaction, if ``lease`` is still the photo's
        (with ``notify``, its ``photo.ready`` webhook in the same transaction). Returns the
        renditions it replaced, or None when the lease was lost (nothing changed)."""

    def set_placeholder(self, photo_id: int, lease: int, placeholder: str) -> bool:
        """Record the placeholder a render under ``lease`` computed, while that render is the
        photo's (``processing`` under that lease); whether it did."""

    def fail(self, photo_id: int, lease: int, code: str, message: str, *,
             notify: bool = False) -> list[RenditionRow] | None:
        """Mark the photo ``failed`` with a code and message if ``lease`` is still the
        photo's (with ``notify``, its ``photo.failed`` webhook in the same transaction); drop
        its renditions and return them (their objects are to be deleted), or None when the
        lease was lost."""

    def retry_later(self, photo_id: int, lease: int, code: str, message: str) -> bool:
        """Record why an attempt failed and put the photo back to ``queued`` for its retry, if
        ``lease`` is still the photo's."""

    def note(self, photo_id: int, code: str, message: str) -> None:
        """Record why the photo's current attempt ended (a worker lost, a hard time limit)
        while it is ``processing``, from a process that holds no lease."""

    def requeue(self, job: Job) -> bool:
        """Put ``job`` in the outbox again if it is still the photo's current, unfinished
        generation (after the broker dead-lettered it); return whether it did."""

    def relay(self, publish: Publish, *, limit: int = 100, photo_id: int | None = None) -> int:
        """Publish up to ``limit`` unsent jobs (oldest first; only ``photo_id``'s when given)
        and remove those published. Safe to run in many processes at once: each job is taken
        by one. A publish that raises stops the batch; what was published before it stays
        removed, and the error propagates. Returns how many were published."""

    def outbox_size(self) -> int:
        """How many jobs wait in the outbox."""

    def stuck(self, queued_for: float, processing_for: float, limit: int) -> list[Job]:
        """Photos no job may ever render, longest-waiting first, at most ``limit``: with no
        job in the outbox, ``queued`` for over ``queued_for`` seconds, or ``processing`` under
        a lease taken over ``processing_for`` seconds ago (the database's clock). Each as the
        job that would render its current generation."""

    def requeue_stuck(self, jobs: Sequence[Job], queued_for: float,
                      processing_for: float) -> list[Job]:
        """Of ``jobs``, those still stuck as :meth:`stuck` finds them (same generation): their
        job into the outbox and their wait restarted, in one transaction (a shard's, sharded),
        so a photo is queued again at most once per ``queued_for``. Returns those queued."""

    def take_turn(self, name: str, holder: str, seconds: float) -> bool:
        """Hold the fleet-wide turn ``name`` for ``seconds`` if no other ``holder`` holds it
        now (one sweeper at a time, however many workers try); whether ``holder`` has it."""

    def backlog(self) -> Backlog:
        """How many photos wait to be rendered and jobs to be published, and for how long
        the oldest of each has waited (the database's clock); also a readiness probe."""

    def replication(self) -> list[Server]:
        """Every database server this store writes to (a sharded store: the catalog's and
        every shard server's), with its standbys; none for an embedded database."""

    def reader(self, *, after: str | None = None) -> Reader:
        """These reads, served by a standby where the settings allow it
        (``PHOTOPIPE_READ_FROM_STANDBYS``; a standby the database URL lists) and the standby
        is fresh enough: its data at most ``PHOTOPIPE_STANDBY_MAX_LAG`` seconds behind what it
        has received, and, given ``after`` (a :meth:`position`), every write committed before
        that position replayed. Otherwise, or when no standby answers, the primary serves
        them. Without standbys: this store's own reads."""

    def position(self, photo_id: int) -> str | None:
        """How far the server holding the photo has written (its WAL position, once the
        caller's writes have committed): a :meth:`reader` given it sees those writes. None
        where every read sees every write (an embedded database, reads from standbys off)."""

    def get(self, photo_id: int) -> PhotoRow | None:
        """The photo's row, or None."""

    def renditions(self, photo_id: int) -> list[RenditionRow]:
        """The photo's renditions, in the order they were recorded (largest first)."""

    def counts(self) -> dict[str, int]:
        """How many photos are in each status (every status present, zeros included)."""

    def delete(self, photo_id: int, *,
               notify: bool = False) -> tuple[PhotoRow, list[RenditionRow]] | None:
        """Remove the photo: its row, its renditions' rows and its jobs in the outbox, in one
        transaction (with ``notify``, its ``photo.deleted`` webhook too). Returns what it was
        and the renditions it had (their objects are to be
        deleted), or None when there was no such photo. A render of it still running loses
        its lease, and a job for it turns up to nothing."""

    def photos_of(self, user_id: int, before: int | None, limit: int) -> list[PhotoRow]:
        """The user's photos with ids below ``before`` (None: from the newest), newest first,
        at most ``limit``: keyset pagination on one shard (a user's photos live on theirs)."""

    def scan(self, selection: Selection, after: int, limit: int) -> list[PhotoRow]:
        """Up to ``limit`` photos of ``selection`` with ids above ``after``, by id (keyset
        pagination: memory stays flat however many match)."""

    def regenerate(self, run_id: int, photos: Sequence[Rerender], *, cursor: int,
                   enqueue: bool = True) -> list[Job]:
        """For each photo, a new generation with its new options, owned by run ``run_id``
        (and its job in the outbox with ``enqueue``), and the run's cursor moved to
        ``cursor``: all in one transaction, so a run resumed after a crash renders no photo
        twice and skips none."""

    def create_run(self, key: str, selection: str, changes: str, mode: str) -> Run:
        """Record a new run, ``running``, its cursor at 0."""

    def find_run(self, key: str) -> Run | None:
        """The unfinished run with this key (the same selection and changes), if any."""

    def get_run(self, run_id: int) -> Run | None:
        """The run, or None."""

    def runs(self, limit: int = 50) -> list[Run]:
        """The latest runs, newest first."""

    def end_run(self, run_id: int, state: Literal["done", "cancelled"]) -> None:
        """Mark the run ended."""

    def tally(self, run_id: int) -> dict[tuple[str, str | None], int]:
        """How many of the run's photos are in each (status, error code); photos whose render
        another request took over since (a resubmission) no longer count."""

    def run_photos(self, run_id: int, statuses: Sequence[Status], after: int,
                   limit: int) -> list[PhotoRow]:
        """The run's photos in these statuses with ids above ``after``, by id."""

    def open_upload(self, upload: UploadRow) -> None:
        """Record a new resumable upload (its ``version`` as given)."""

    def get_upload(self, photo_id: int) -> UploadRow | None:
        """The upload of the photo id it was given, or None."""

    def put_upload(self, photo_id: int, version: int, state: str) -> bool:
        """Replace the upload's state if its version is still ``version`` (and bump it);
        whether it did."""

    def drop_upload(self, photo_id: int) -> UploadRow | None:
        """Remove the upload's row; what it was, or None when there was none."""

    def expired_uploads(self, now: float, limit: int) -> list[UploadRow]:
        """Up to ``limit`` uploads that expired before ``now``, the longest expired first."""

    def due_webhooks(self, limit: int, lease: float) -> list[Webhook]:
        """Up to ``limit`` webhooks due now, each the oldest left of its photo (by generation,
        then as recorded), taken for ``lease`` seconds: no other sender gets them meanwhile,
        and a sender that dies leaves them to the next one after it."""

    def end_webhook(self, photo_id: int, webhook_id: int) -> None:
        """Remove the webhook (delivered, refused for good, or given up on)."""

    def retry_webhook(self, photo_id: int, webhook_id: int, delay: float, error: str) -> None:
        """Count a failed delivery and make the webhook due again in ``delay`` seconds."""

    def close(self) -> None:
        """Release the connection."""

