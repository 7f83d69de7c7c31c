"""``photopipe reprocess`` (re-render a selection of photos, resumably) and ``photopipe gc``
(remove objects no row names)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

from tqdm import tqdm

from pipeline import reprocess as rp
from pipeline.errors import PhotopipeError
from pipeline.jobs import Job, process
from pipeline.metadata import STATUSES, MetadataStore, Selection, open_metadata
from pipeline.records import EPOCH_MS
from pipeline.relay import drain
from pipeline.settings import Settings
from pipeline.storage import open_store
from pipeline.sweep import sweep
from pipeline.uploads import Uploads

log = logging.getLogger("photopipe.reprocess")
_LOG_EVERY = 5.0


def add_commands(commands: Any) -> None:
    cmd = commands.add_parser("reprocess", help="re-render a selection of photos")
    pick = cmd.add_argument_group("selection (each narrows it)")
    pick.add_argument("--from-id", type=int, help="photo ids from this one (inclusive)")
    pick.add_argument("--to-id", type=int, help="photo ids up to this one (inclusive)")
    pick.add_argument("--since", type=_when, help="photos uploaded at or after (ISO 8601)")
    pick.add_argument("--until", type=_when, help="photos uploaded before (ISO 8601)")
    pick.add_argument("--status", action="append", choices=STATUSES, default=[])
    pick.add_argument("--user-id", type=int)
    pick.add_argument("--look", metavar="NAME|none", help="photos with this look (or none)")
    pick.add_argument("--stale", action="store_true",
                      help="only ready photos rendered with another spec than the current one")
    change = cmd.add_argument_group("changes")
    change.add_argument("--set-filter", metavar="NAME|none")
    change.add_argument("--set-strength", type=float)
    change.add_argument("--set-ladder")
    how = cmd.add_argument_group("how")
    how.add_argument("--dry-run", action="store_true", help="count and estimate; change nothing")
    how.add_argument("--local", action="store_true", help="render in-process, without a broker")
    how.add_argument("--processes", type=int, default=1, metavar="N")
    how.add_argument("--max-rate", type=float, metavar="PHOTOS_PER_S")
    how.add_argument("--max-queue-depth", type=int, metavar="N")
    how.add_argument("--no-wait", action="store_true", help="enqueue and exit, do not wait")
    how.add_argument("--resume", type=int, metavar="RUN_ID")
    how.add_argument("--list", action="store_true", help="the latest runs")
    how.add_argument("--show", type=int, metavar="RUN_ID", help="a run and its failures")
    how.add_argument("--json", action="store_true")
    cmd.set_defaults(run=run_reprocess)
    gc = commands.add_parser("gc", help="delete rendition objects that no row names")
    gc.add_argument("--dry-run", action="store_true")
    gc.add_argument("--json", action="store_true")
    gc.set_defaults(run=run_gc)


def run_reprocess(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        request = _request(args)
    except ValueError as exc:
        print(f"photopipe: {exc}", file=sys.stderr)
        return 2
    if not args.local and not args.dry_run and not args.list and args.show is None \
            and not settings.broker_url:
        print("photopipe: PHOTOPIPE_BROKER_URL is not set: use --local to render in-process",
              file=sys.stderr)
        return 2
    db = open_metadata(settings)
    try:
        if args.list or args.show is not None:
            return _list(db, args.json) if args.list else _show(db, args.show, args.json)
        if args.dry_run:
            return _dry_run(db, request, settings, args.json)
        return _run(db, request, settings, args)
    except (PhotopipeError, LookupError) as exc:
        print(f"photopipe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()


def _request(args: argparse.Namespace) -> rp.Request:
    from pipeline.core import check_options

    low = max(filter(None, (args.from_id, args.since)), default=None)
    high = min(filter(None, (args.to_id, args.until and args.until - 1)), default=None)
    selection = Selection(low, high, tuple(args.status), args.user_id, args.look)
    changes = rp.Changes(args.set_filter, args.set_strength, args.set_ladder)
    look = None if args.set_filter in (None, "none") else args.set_filter
    check_options(args.set_ladder or "default", look, 1.0 if args.set_strength is None
                  else args.set_strength)
    return rp.Request(selection, changes, args.stale)


def _when(text: str) -> int:
    """The smallest photo id of an upload at ``text`` (ids carry their time)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, int(moment.timestamp() * 1000) - EPOCH_MS) << 23


def _run(db: MetadataStore, request: rp.Request, settings: Settings,
         args: argparse.Namespace) -> int:
    run = rp.start(db, request, "local" if args.local else "broker", args.resume)
    log.info("reprocess run %s: from photo id %s", run.id, run.cursor)
    progress = _Progress(run.id, args.json)
    if args.local:
        with _LocalPool(settings, args.processes) as pool:
            pool.render(_pending(db, run.id), progress)  # left by an interrupted run
            rp.enqueue(db, run, request, settings.encoding, rp.Pace(args.max_rate),
                       local=True, on_batch=lambda jobs: pool.render(jobs, progress))
    else:
        publish, depth = _broker(settings, db)
        pace = rp.Pace(args.max_rate, args.max_queue_depth, depth)
        def published(jobs: list[Job]) -> None:
            drain(db, publish)  # the workers' relays would too; this makes it prompt
            progress.queued(len(jobs))

        rp.enqueue(db, run, request, settings.encoding, pace, local=False, on_batch=published)
        if not args.no_wait:
            _wait(db, run.id, progress)
    result = rp.summary(db, run.id)
    if args.local or result.pending == 0:
        db.end_run(run.id, "done")
        result = rp.summary(db, run.id)
    progress.close()
    _print_summary(db, result, args.json)
    return 1 if result.failed else 0


def _pending(db: MetadataStore, run_id: int) -> list[Job]:
    rows = db.run_photos(run_id, ("queued", "processing"), 0, 1_000_000)
    return [Job(r.id, r.generation) for r in rows]


def _broker(settings: Settings, db: MetadataStore) -> tuple[Any, Any]:
    from workers.app import make_app, queue_depth
    from workers.publisher import CeleryPublisher

    app = make_app(settings)
    publisher = CeleryPublisher(app)

    def depth() -> int:
        try:
            return queue_depth(app) + db.outbox_size()
        except Exception:  # the broker is away: hold the run until it is back
            return sys.maxsize

    return publisher.publish, depth


def _wait(db: MetadataStore, run_id: int, progress: _Progress) -> None:
    while True:
        state = rp.summary(db, run_id)
        progress.ended(state.done + sum(state.failed.values()) + state.skipped, state)
        if state.pending == 0:
            return
        time.sleep(0.2)


class _Progress:
    """A bar with count, rate and ETA on a terminal; a log line every few seconds otherwise."""

    def __init__(self, run_id: int, quiet: bool) -> None:
        self.run_id, self.count, self.enqueued = run_id, 0, 0
        self.last_line = time.monotonic()
        self.bar = tqdm(desc=f"run {run_id}", unit="photo", file=sys.stderr) \
            if sys.stderr.isatty() and not quiet else None

    def queued(self, n: int) -> None:
        self.enqueued += n
        if self.bar is not None:
            self.bar.total = self.enqueued
            self.bar.refresh()
        self._line()

    def ended(self, total: int, state: rp.Summary | None = None) -> None:
        if self.bar is not None:
            self.bar.update(total - self.count)
        self.count = total
        self._line(state)

    def _line(self, state: rp.Summary | None = None) -> None:
        if self.bar is None and time.monotonic() - self.last_line >= _LOG_EVERY:
            self.last_line = time.monotonic()
            failed = sum(state.failed.values()) if state else 0
            log.info("reprocess run %s: %d enqueued, %d ended (%d failed)", self.run_id,
                     self.enqueued, self.count, failed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _LocalPool:
    """``--local``: render jobs in this process (one) or in worker processes (several)."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings, self.processes = settings, max(1, processes)
        self.pool: Any = None

    def __enter__(self) -> _LocalPool:
        if self.processes > 1:
            self.pool = get_context("spawn").Pool(self.processes, _child_init)
        else:
            _child_init()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()

    def render(self, jobs: list[Job], progress: _Progress) -> None:
        progress.queued(len(jobs))
        results = self.pool.imap_unordered(_child_job, jobs) if self.pool else map(
            _child_job, jobs)
        for _ in results:
            progress.ended(progress.count + 1)


_CHILD: dict[str, Any] = {}


def _child_init() -> None:
    settings = Settings.from_env()
    _CHILD.update(settings=settings, store=open_store(settings), db=open_metadata(settings))


def _child_job(job: Job) -> str:
    outcome = process(job, _CHILD["store"], _CHILD["db"], _CHILD["settings"])
    while outcome.status == "retry":  # in-process: wait out what an outage it is, here
        time.sleep(outcome.retry_in or 1)
        outcome = process(job, _CHILD["store"], _CHILD["db"], _CHILD["settings"],
                          refund=outcome.refund, since=outcome.since)
    return outcome.status


def _dry_run(db: MetadataStore, request: rp.Request, settings: Settings, as_json: bool) -> int:
    found = rp.dry_run(db, request, settings.encoding)
    fixed, per_mp = _calibrate(request, settings)
    cpu = found.photos * fixed + found.source_pixels / 1e6 * per_mp
    estimate = {"cpu_seconds": round(cpu, 1), "source_bytes": found.source_bytes,
                "seconds_per_photo": round(fixed, 4), "seconds_per_megapixel": round(per_mp, 4)}
    if as_json:
        print(json.dumps({"photos": found.photos, "by_status": dict(found.by_status),
                          "by_look": dict(found.by_look), "sample": found.sample,
                          "estimate": estimate}))
        return 0
    print(f"{found.photos} photos would be re-rendered")
    print("  by status: " + ", ".join(f"{k} {v}" for k, v in sorted(found.by_status.items())))
    print("  by look:   " + ", ".join(f"{k} {v}" for k, v in sorted(found.by_look.items())))
    print(f"  sample ids: {' '.join(map(str, found.sample))}")
    print(f"  estimate: {estimate['cpu_seconds']} CPU seconds ({fixed:.3f} s a photo + "
          f"{per_mp:.3f} s a megapixel, timed now), {found.source_bytes} bytes of originals "
          "to read")
    return 0


def _calibrate(request: rp.Request, settings: Settings) -> tuple[float, float]:
    """CPU seconds of a render with the run's new options as a fixed part and a part per
    source megapixel, fitted to two small synthetic photos timed here after a warm-up (small,
    so a dry run stays small in memory)."""
    import io

    import numpy as np
    from PIL import Image

    from pipeline.core import render

    def upload(width: int, height: int) -> bytes:
        rng = np.random.default_rng(0)
        noise = rng.normal(0, 8, (height, width, 3)) + np.linspace(0, 255, width)[None, :, None]
        buffer = io.BytesIO()
        Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).save(buffer, "JPEG")
        return buffer.getvalue()

    look = None if request.changes.look in (None, "none") else request.changes.look
    options = {"filter": look, "ladder": request.changes.ladder or "default",
               "strength": 1.0 if request.changes.strength is None else request.changes.strength,
               "encoding": settings.encoding}
    small, large = upload(640, 480), upload(960, 720)
    seconds = []
    for data in (small, small, large):  # the first builds what later renders reuse
        began = time.process_time()
        render(data, **options)  # type: ignore[arg-type]
        seconds.append(time.process_time() - began)
    per_mp = max(0.0, (seconds[2] - seconds[1]) / (0.6912 - 0.3072))
    return max(0.0, seconds[1] - per_mp * 0.3072), per_mp


def _list(db: MetadataStore, as_json: bool) -> int:
    runs = db.runs()
    if as_json:
        print(json.dumps([rp.summary(db, r.id).as_json() for r in runs]))
        return 0
    for run in runs:
        state = rp.summary(db, run.id)
        print(f"run {run.id}  {run.state:9}  {run.created_at}  enqueued {run.enqueued}  done "
              f"{state.done}  failed {sum(state.failed.values())}  pending {state.pending}  "
              f"{run.changes}")
    return 0


def _show(db: MetadataStore, run_id: int, as_json: bool) -> int:
    _print_summary(db, rp.summary(db, run_id), as_json)
    return 0


def _print_summary(db: MetadataStore, result: rp.Summary, as_json: bool) -> None:
    failures = [(r.id, r.error_code) for r in db.run_photos(result.run.id, ("failed",), 0, 20)]
    if as_json:
        print(json.dumps({**result.as_json(), "failures": [
            {"photo_id": i, "code": c} for i, c in failures]}))
        return
    failed = ", ".join(f"{n} {code}" for code, n in sorted(result.failed.items())) or "none"
    print(f"run {result.run.id} {result.run.state}: {result.done} done, failed: {failed}, "
          f"{result.skipped} skipped, {result.pending} pending")
    for photo_id, code in failures:
        print(f"  failed {photo_id}: {code}")


def run_gc(args: argparse.Namespace, settings: Settings) -> int:
    store, db = open_store(settings), open_metadata(settings)
    uploads = Uploads(store, db, None, settings)
    try:
        found = sweep(store, db, delete=not args.dry_run)
        expired = len(db.expired_uploads(uploads.clock(), 1_000_000)) if args.dry_run \
            else _collected(uploads)
        strays = len(uploads.strays(delete=not args.dry_run))
    except PhotopipeError as exc:
        print(f"photopipe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    if args.json:
        print(json.dumps({"examined": found.examined, "orphans": len(found.orphans),
                          "deleted": found.deleted, "expired_uploads": expired,
                          "stray_chunks": strays}))
    else:
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{found.examined} objects examined, {len(found.orphans)} orphans, {verb} "
              f"{found.deleted if not args.dry_run else len(found.orphans)}; "
              f"expired uploads: {expired}, stray upload chunks: {strays} ({verb})")
    return 0


def _collected(uploads: Uploads) -> int:
    total = 0
    while count := uploads.collect():
        total += count
    return total
