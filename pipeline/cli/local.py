"""The embedded commands: process photos, inspect them, list and preview looks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import filters
from pipeline.cli.views import (
    Outcome,
    outcome_json,
    outcome_line,
    photo_json,
    photo_text,
    storage_location,
)
from pipeline.core import ladders
from pipeline.core.preview import contact_sheet
from pipeline.errors import ImageRejected, PhotopipeError, TooLarge
from pipeline.jobs import Options, file_id, ingest, reject
from pipeline.jobs import Outcome as JobOutcome
from pipeline.metadata import MetadataStore, open_metadata
from pipeline.settings import Settings
from pipeline.storage import ObjectStore, open_store


def add_commands(commands: Any) -> None:
    """Register the embedded commands: process, show, filters, preview."""
    process = commands.add_parser("process", help="render files through the whole pipeline")
    process.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    process.add_argument("--ladder", default="default", choices=sorted(ladders.LADDERS))
    process.add_argument("--filter", default=None, help="a look (see `photopipe filters`)")
    process.add_argument("--strength", type=float, default=1.0, help="0 to 1 (default 1)")
    process.add_argument("--json", action="store_true", help="one JSON object per input")
    process.set_defaults(run=_process)
    show = commands.add_parser("show", help="a photo's row and its renditions")
    show.add_argument("photo_id", type=int, metavar="PHOTO_ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=_show)
    looks = commands.add_parser("filters", help="list the looks")
    looks.set_defaults(run=_filters)
    preview = commands.add_parser("preview", help="a contact sheet of an image under every look")
    preview.add_argument("image", type=Path, metavar="IMAGE")
    preview.add_argument("--out", type=Path, required=True, metavar="SHEET.jpg")
    preview.set_defaults(run=_preview)


def _process(args: argparse.Namespace, settings: Settings) -> int:
    try:
        options = Options(args.ladder, args.filter, args.strength)
    except ValueError as exc:
        print(f"photopipe: {exc}", file=sys.stderr)
        return 2
    store, db = open_store(settings), open_metadata(settings)
    failed = False
    try:
        for path in args.paths:
            outcome = _process_one(path, options, store, db, settings)
            print(json.dumps(outcome_json(outcome)) if args.json else outcome_line(outcome),
                  flush=True)
            failed = failed or not outcome.ok
    finally:
        db.close()
    if not args.json:
        print(f"Thumbnails are in {storage_location(settings)}/photos/")
    return 1 if failed else 0


def _process_one(path: Path, options: Options, store: ObjectStore, db: MetadataStore,
                 settings: Settings) -> Outcome:
    try:
        size = path.stat().st_size
        if size > settings.limits.max_bytes:
            error = TooLarge(f"{size} bytes is over the limit of {settings.limits.max_bytes}")
            return _recorded(path, reject(file_id(path), options, error, db), db)
        data = path.read_bytes()
    except OSError as exc:
        return Outcome(path, None, [], ("unreadable", f"cannot read {path}: {exc.strerror}"))
    return _recorded(path, ingest(data, options, store, db, settings), db)


def _recorded(path: Path, outcome: JobOutcome, db: MetadataStore) -> Outcome:
    """What the row says now, or what the attempt said when the database cannot tell."""
    error = None if outcome.status == "ready" else (outcome.code or outcome.status,
                                                    outcome.message or "")
    try:
        row = db.get(outcome.job.photo_id)
        renditions = db.renditions(row.id) if row and row.status == "ready" else []
    except PhotopipeError as exc:
        return Outcome(path, None, [], (exc.code, str(exc)), outcome.job.photo_id)
    if outcome.status in ("ready", "failed"):
        error = None
    return Outcome(path, row, renditions, error, outcome.job.photo_id)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    db = open_metadata(settings)
    try:
        row = db.get(args.photo_id)
        renditions = db.renditions(args.photo_id) if row else []
    finally:
        db.close()
    if row is None:
        print(f"photopipe: no photo {args.photo_id}", file=sys.stderr)
        return 1
    print(json.dumps(photo_json(row, renditions)) if args.json else photo_text(row, renditions))
    return 0


def _filters(args: argparse.Namespace, settings: Settings) -> int:
    print("\n".join(filters.names()))
    return 0


def _preview(args: argparse.Namespace, settings: Settings) -> int:
    try:
        sheet = contact_sheet(args.image.read_bytes(), settings.limits)
    except OSError as exc:
        print(f"photopipe: cannot read {args.image}: {exc.strerror}", file=sys.stderr)
        return 1
    except ImageRejected as exc:
        print(f"photopipe: {args.image}: {exc.code}: {exc}", file=sys.stderr)
        return 1
    args.out.write_bytes(sheet)
    print(f"Contact sheet of {len(filters.names())} looks written to {args.out}")
    return 0
