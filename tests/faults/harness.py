"""Fault scenarios' shared parts: a deployment on chosen services, the invariant check made
directly on the database and the bucket, and the report the run writes (docs/faults.md)."""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.metadata.postgres import PostgresMetadata
from pipeline.settings import Settings
from tests.services import S3Server
from tests.workers.harness import ROOT, Deployment, photo, wait_until
from workers.app import DEAD_QUEUE, make_app, queue_depth

REPORT = ROOT / "docs" / "faults.md"
RESULTS: list[dict[str, Any]] = []
# Fast retries, so a scenario proves the invariant in seconds rather than minutes.
COMMITTED = r"photo (\d+): ready"  # a worker's line for a render it committed
FAST_RETRIES = {"PHOTOPIPE_RETRY_BACKOFF": "0.2", "PHOTOPIPE_RETRY_BACKOFF_MAX": "2"}


def deploy(tmp_path: Path, broker: str, database: str, moto: S3Server,
           endpoint: str | None = None, **env: str) -> Deployment:
    store = moto.store()
    full = {**os.environ, **moto.env(), **FAST_RETRIES, "PHOTOPIPE_BROKER_URL": broker,
            "PHOTOPIPE_DATABASE_URL": database,
            "PHOTOPIPE_STORAGE_URL": f"s3://{store.bucket}/{store.prefix.rstrip('/')}", **env}
    if endpoint:
        full["PHOTOPIPE_S3_ENDPOINT_URL"] = endpoint
    deployment = Deployment(full, store, PostgresMetadata(database), tmp_path)
    deployment.cli("db", "upgrade")
    return deployment


def files(tmp_path: Path, count: int, start: int = 0, **kwargs: Any) -> list[Path]:
    paths = []
    for index in range(start, start + count):
        path = tmp_path / f"upload-{index}.jpg"
        path.write_bytes(photo(index, **kwargs))
        paths.append(path)
    return paths


def submit(deployment: Deployment, paths: list[Path], *extra: str) -> list[int]:
    out = deployment.cli("submit", *map(str, paths), "--user-id", "42", "--json", *extra)
    ids = [int(line.split('"photo_id": ')[1].split(",")[0]) for line in out.stdout.splitlines()]
    assert len(ids) == len(paths), out.stdout + out.stderr
    return ids


def settle(deployment: Deployment, ids: list[int], seconds: float = 240) -> None:
    """Wait until every photo has ended (ready or failed) and the outbox is empty."""
    def ended() -> bool:
        counts = deployment.db.counts()
        return counts["ready"] + counts["failed"] == len(ids) and \
            deployment.db.outbox_size() == 0
    wait_until(ended, seconds, f"{len(ids)} photos to end")


@dataclass
class Check:
    """What the invariant check found."""

    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    objects: int = 0
    renders: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    max_attempts: int = 0
    swept: int = 0  # objects a failed cleanup left, removed by photopipe gc before comparing


def check(deployment: Deployment, ids: list[int], expected: dict[int, str] | None = None,
          *, killed: int = 0) -> Check:
    """The invariant, on the database and the bucket themselves: every photo ended once with
    its expected code (``expected``: photo id -> code, the rest ``ready``), none queued or
    processing, every rendition row has its object and every object its row (after
    ``photopipe gc``, where a cleanup after a commit failed and logged so), one committed
    render per ready photo in the workers' logs (a worker SIGKILLed mid-job, of ``killed``,
    may die between its commit and its log line), the dead-letter queue empty, the outbox
    too."""
    expected = expected or {}
    found = Check()
    keys = []
    for photo_id in ids:
        row = deployment.db.get(photo_id)
        assert row is not None, photo_id
        found.statuses[row.status] += 1
        found.max_attempts = max(found.max_attempts, row.attempts)
        want = expected.get(photo_id)
        if want is None:
            assert row.status == "ready", (photo_id, row)
        else:
            assert (row.status, row.error_code) == ("failed", want), (photo_id, row)
            found.codes[want] += 1
        keys += [r.key for r in deployment.db.renditions(photo_id)]
    ready = found.statuses["ready"]
    logs = _logs(deployment, ready - killed)
    objects = sorted(deployment.store.list("photos/"))
    assert set(keys) <= set(objects), "a row names a missing object"
    if extra := set(objects) - set(keys):  # only where a cleanup after a commit failed, and said
        left = set(re.findall(r"photo (\d+): objects of older renders left for photopipe gc",
                              logs))
        assert {key.split("/")[1] for key in extra} <= left, sorted(extra)
        deployment.cli("gc")
        found.swept = len(extra)
        objects = sorted(deployment.store.list("photos/"))
    assert objects == sorted(keys), "rows and objects differ"
    found.rows, found.objects = len(keys), len(objects)
    assert deployment.db.outbox_size() == 0
    app = make_app(Settings.from_env(deployment.env))
    if deployment.env["PHOTOPIPE_BROKER_URL"].startswith("amqp"):
        found.dead_letters = queue_depth(app, DEAD_QUEUE)
        assert found.dead_letters == 0
    for match in re.finditer(r"photo (\d+): (ready|failed|retry|skipped|superseded|requeued)",
                             logs):
        found.renders[match.group(2)] += 1
    commits = Counter(re.findall(COMMITTED, logs))
    assert all(n == 1 for n in commits.values()), commits  # nothing committed twice
    assert ready - killed <= sum(commits.values()) <= ready, (ready, sum(commits.values()))
    return found


def _logs(deployment: Deployment, commits: int, seconds: float = 30) -> str:
    """The workers' logs, once they hold at least ``commits`` committed renders: a worker logs
    a job's line after the commit and the cleanup that follows it, which an S3 stall holds up
    to the soft time limit, so a row can be ready a few seconds before its line is written."""
    deadline = time.monotonic() + seconds
    while True:
        logs = "".join(p.read_text(errors="replace") for p in deployment.logs.glob("worker-*.log"))
        if len(re.findall(COMMITTED, logs)) >= commits or time.monotonic() > deadline:
            return logs
        time.sleep(0.2)


def report(name: str, injected: str, behaviour: str, found: Check) -> None:
    RESULTS.append({"name": name, "injected": injected, "behaviour": behaviour,
                    "found": found})


def write_report() -> None:
    if not RESULTS:
        return
    lines = ["# Faults: what was injected, what photopipe did, what the check found", "",
             "Written by the test run itself (`tests/faults/`), from its last run on this "
             "machine. Every scenario runs real `photopipe` processes against real services "
             "(private instances where a server is stopped or restarted) and ends with the "
             "invariant check made directly on the database and the bucket: every photo "
             "`ready` or `failed` exactly once with the expected code, none `queued` or "
             "`processing`, every rendition row has its object and every object its row "
             "(after `photopipe gc` where a cleanup after a commit failed, and said so; "
             "the column after rows counts what it removed), one committed render per "
             "ready photo in the workers' logs, the outbox and the dead-letter queue "
             "empty.", "",
             "| scenario | how it was injected | what the system did | photos | failed "
             "(code) | rows = objects | left for gc | most attempts | worker outcomes |",
             "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | --- |"]
    for r in RESULTS:
        f: Check = r["found"]
        codes = ", ".join(f"{n} {c}" for c, n in sorted(f.codes.items())) or "0"
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(f.renders.items()))
        lines.append(f"| {r['name']} | {r['injected']} | {r['behaviour']} | "
                     f"{sum(f.statuses.values())} | {codes} | {f.rows} | {f.swept} | "
                     f"{f.max_attempts} | "
                     f"{outcomes} |")
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
