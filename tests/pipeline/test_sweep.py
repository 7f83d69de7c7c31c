"""The stuck sweep as a use case: what it finds, when it holds back, one sweeper at a time, and
``photopipe sweep`` on the embedded default."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from pipeline import sweep
from pipeline.errors import BrokerUnavailable
from pipeline.jobs import original_key
from pipeline.metadata import NewPhoto
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.records import Job
from pipeline.settings import Settings
from pipeline.storage import open_store

ROOT = Path(__file__).resolve().parents[2]


def lose(db: SqliteMetadata, photo_id: int) -> Job:
    """A photo queued whose job the broker then lost."""
    job = db.create(NewPhoto(photo_id, original_key(photo_id)))
    db.relay(lambda j: None, photo_id=photo_id)
    return job


@pytest.fixture
def quick(settings: Settings) -> Settings:
    return replace(settings, stuck_after=0.2, task_time_limit=2)


def depth(messages: int, asked: list[int]) -> Callable[[], int]:
    def waiting() -> int:
        asked.append(messages)
        return messages

    return waiting


def test_lost_jobs_are_queued_again(sqlite_db: SqliteMetadata, quick: Settings) -> None:
    lost = [lose(sqlite_db, i) for i in (1, 2, 3)]
    time.sleep(0.25)
    asked: list[int] = []
    result = sweep.rescue(sqlite_db, quick, depth(0, asked), holder="w1")
    assert result.found == tuple(lost) and result.requeued == tuple(lost)
    assert (result.waiting, result.held_back, asked) == (0, False, [0])
    published: list[Job] = []
    sqlite_db.relay(published.append)
    assert published == lost


def test_only_what_the_queue_lacks_is_queued_the_longest_waiting_first(
        sqlite_db: SqliteMetadata, quick: Settings) -> None:
    lost = []
    for photo_id in (3, 1, 2):
        lost.append(lose(sqlite_db, photo_id))
        time.sleep(0.01)  # apart on the database's millisecond clock
    time.sleep(0.25)
    result = sweep.rescue(sqlite_db, quick, depth(2, []), holder="w1")
    assert result.found == tuple(lost) and result.requeued == (lost[0],)
    assert not result.held_back
    time.sleep(0.06)  # the next pass: the one queued again waits anew, the queue still holds 2
    again = sweep.rescue(sqlite_db, quick, depth(2, []), holder="w1")
    assert again.found == tuple(lost[1:]) and again.held_back and again.requeued == ()


def test_a_queue_holding_as_many_messages_is_waited_for(sqlite_db: SqliteMetadata,
                                                        quick: Settings) -> None:
    """Photos merely waiting their turn behind a long queue are not copied into it."""
    for i in (1, 2, 3):
        lose(sqlite_db, i)
    time.sleep(0.25)
    result = sweep.rescue(sqlite_db, quick, depth(3, []), holder="w1")
    assert result.held_back and len(result.found) == 3 and result.requeued == ()
    assert sqlite_db.outbox_size() == 0


def test_the_broker_is_not_asked_when_nothing_is_stuck(sqlite_db: SqliteMetadata,
                                                       quick: Settings) -> None:
    lose(sqlite_db, 1)  # not waited long enough yet
    asked: list[int] = []
    assert sweep.rescue(sqlite_db, quick, depth(0, asked), holder="w1") == sweep.Rescue()
    assert asked == []


def test_a_broker_that_cannot_say_stops_the_pass(sqlite_db: SqliteMetadata,
                                                 quick: Settings) -> None:
    lose(sqlite_db, 1)
    time.sleep(0.25)

    def down() -> int:
        raise BrokerUnavailable("no answer")

    with pytest.raises(BrokerUnavailable):
        sweep.rescue(sqlite_db, quick, down, holder="w1")
    assert sqlite_db.outbox_size() == 0


def test_one_sweeper_a_turn_across_the_fleet(sqlite_db: SqliteMetadata,
                                             quick: Settings) -> None:
    lose(sqlite_db, 1)
    time.sleep(0.25)
    first = sweep.rescue(sqlite_db, quick, depth(0, []), holder="w1")
    second = sweep.rescue(sqlite_db, quick, depth(0, []), holder="w2")
    assert first.requeued and second == sweep.Rescue(turn=False)
    assert sweep.interval(quick) == pytest.approx(0.05)


def test_a_dry_run_queues_nothing(sqlite_db: SqliteMetadata, quick: Settings) -> None:
    lose(sqlite_db, 1)
    time.sleep(0.25)
    result = sweep.rescue(sqlite_db, quick, depth(0, []), dry_run=True)
    assert len(result.found) == 1 and result.requeued == () and sqlite_db.outbox_size() == 0


def test_processing_photos_wait_the_task_time_limit_too(sqlite_db: SqliteMetadata,
                                                       quick: Settings) -> None:
    """A render may run for the whole time limit: only a lease older than it is lost."""
    job = lose(sqlite_db, 1)
    sqlite_db.start(job)
    time.sleep(0.25)
    assert sweep.rescue(sqlite_db, quick, depth(0, []), holder="w1").found == ()
    assert sweep.rescue(sqlite_db, replace(quick, task_time_limit=2, stuck_after=0.2),
                        depth(0, []), holder="w1").found == ()
    time.sleep(1.8)
    assert sweep.rescue(sqlite_db, quick, depth(0, []), holder="w1").requeued == (job,)


def test_the_workers_loop_sweeps_every_quarter_and_reports(tmp_path: Path,
                                                          quick: Settings) -> None:
    path = tmp_path / "loop.db"
    db = SqliteMetadata(str(path))
    lose(db, 1)
    reports: list[sweep.Rescue] = []
    stop = threading.Event()
    loop = threading.Thread(target=sweep.run, args=(
        quick, lambda: SqliteMetadata(str(path)), lambda: 0, stop),
        kwargs={"holder": "w1", "report": reports.append})
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while not any(r.requeued for r in reports) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        loop.join(5)
    assert [r.requeued for r in reports if r.requeued] == [(Job(1, 1),)]
    assert db.outbox_size() == 1
    assert len(reports) >= 3  # a pass every 0.05 s: 0.2 s of waiting took several


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_photopipe_sweep_renders_lost_jobs_in_process_on_the_embedded_default(
        tmp_path: Path) -> None:
    env = {**os.environ, "PHOTOPIPE_DATA_DIR": str(tmp_path), "PHOTOPIPE_STUCK_AFTER": "0.2"}
    env.pop("PHOTOPIPE_BROKER_URL", None)
    settings = Settings.from_env(env)
    db = SqliteMetadata(settings.database_url.removeprefix("sqlite://"))
    open_store(settings).put(original_key(5), jpeg(), "image/jpeg")
    lose(db, 5)
    time.sleep(0.25)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=True)

    assert json.loads(cli("status", "--json").stdout)["stuck"] == 1
    assert json.loads(cli("sweep", "--dry-run", "--json").stdout)["requeued"] == []
    out = json.loads(cli("sweep", "--json").stdout)
    assert (out["found"], out["requeued"], out["queue_depth"]) == (["5"], ["5"], 0)
    row = db.get(5)
    assert row is not None and row.status == "ready" and row.generation == 1
    assert json.loads(cli("status", "--json").stdout)["stuck"] == 0
