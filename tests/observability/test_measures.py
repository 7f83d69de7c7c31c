"""What an attempt measures about itself: the stages it completed, the bytes it wrote, its
CPU, and how it was to be rendered; and render()'s own stage timings."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import REGISTRY

import filters
from pipeline import jobs
from pipeline.core import render
from pipeline.core.decode import decode
from pipeline.core.encode import encode
from pipeline.core.placeholder import placeholder
from pipeline.core.renditions import render_ladder as ladder
from pipeline.jobs import Options, ingest, process
from pipeline.metadata import NewPhoto
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.observability.report import report
from pipeline.settings import Settings
from pipeline.storage.memory import MemoryStore
from tests.helpers import PHOTOS

PHOTO = PHOTOS / "real" / "htc_desire_phone_gps.jpg"
RENDER_STAGES = ["fetch", "decode", "resize", "placeholder", "encode", "store", "record"]
T = TypeVar("T")


def _queue(store: MemoryStore, db: SqliteMetadata, data: bytes, look: str | None = None,
           photo_id: int = 7) -> jobs.Job:
    store.put(f"uploads/{photo_id}", data, "image/jpeg")
    return db.create(NewPhoto(photo_id, f"uploads/{photo_id}", "default", look, 1.0))


def test_render_times_its_stages_in_order_and_the_look_only_with_one() -> None:
    data = PHOTO.read_bytes()
    plain, looked = render(data), render(data, filter="clarendon")
    assert list(plain.timings) == ["decode", "resize", "placeholder", "encode"]
    assert list(looked.timings) == ["decode", "look", "resize", "placeholder", "encode"]
    assert all(0 < seconds < 10 for seconds in looked.timings.values())


def test_a_rendered_attempt_measures_every_stage_and_the_bytes_by_format(
        tmp_path: Path) -> None:
    store, db = MemoryStore(), SqliteMetadata(str(tmp_path / "m.db"))
    job = _queue(store, db, PHOTO.read_bytes(), look="lark")
    wall = time.perf_counter()
    outcome = process(job, store, db, Settings())
    wall = time.perf_counter() - wall
    measured = outcome.measures
    assert outcome.status == "ready"
    assert list(measured.timings) == ["fetch", "decode", "look", "resize", "placeholder",
                                      "encode", "store", "record"]
    assert sum(measured.timings.values()) <= wall
    by_format: dict[str, int] = {}
    for row in db.renditions(job.photo_id):
        by_format[row.format] = by_format.get(row.format, 0) + row.bytes
    assert dict(measured.written) == by_format and set(by_format) == {"jpg", "webp"}
    assert (measured.ladder, measured.look) == ("default", "lark")
    assert 0 < measured.cpu_seconds <= wall * 1.5 + 0.05  # one thread; a little slack for clocks


def test_a_rejected_upload_measures_only_the_stages_it_completed(tmp_path: Path) -> None:
    store, db = MemoryStore(), SqliteMetadata(str(tmp_path / "m.db"))
    job = _queue(store, db, (PHOTOS / "hostile" / "truncated.jpg").read_bytes())
    outcome = process(job, store, db, Settings())
    assert outcome.status == "failed" and outcome.code == "truncated"
    assert list(outcome.measures.timings) == ["fetch"]  # the decode raised: not a stage done
    assert outcome.measures.written == {} and outcome.measures.look is None


def test_a_skipped_job_measures_nothing_but_its_cpu(tmp_path: Path) -> None:
    store, db = MemoryStore(), SqliteMetadata(str(tmp_path / "m.db"))
    job = _queue(store, db, PHOTO.read_bytes())
    assert process(job, store, db, Settings()).status == "ready"
    again = process(job, store, db, Settings())
    assert again.status == "skipped" and again.measures.timings == {}
    assert again.measures.ladder is None


def test_ingest_counts_the_original_in_the_store_stage(tmp_path: Path) -> None:
    store, db = MemoryStore(), SqliteMetadata(str(tmp_path / "m.db"))
    outcome = ingest(PHOTO.read_bytes(), Options(), store, db, Settings())
    assert outcome.status == "ready"
    assert list(outcome.measures.timings) == RENDER_STAGES


class Clock:
    """A perf_counter that moves only when a stage's work moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def costing(self, seconds: float, call: Callable[..., T]) -> Callable[..., T]:
        def work(*args: Any, **kwargs: Any) -> T:
            self.now += seconds
            return call(*args, **kwargs)

        return work


def test_each_stage_histogram_observes_its_own_stage_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each stage's work costs its own power of two on a patched clock: a stage timed over
    another's work, or its time observed into another's histogram, changes a sum."""
    clock = Clock()
    store, db = MemoryStore(), SqliteMetadata(str(tmp_path / "m.db"))
    job = _queue(store, db, PHOTO.read_bytes(), look="clarendon")
    cost = {"fetch": 1, "decode": 2, "look": 4, "resize": 8, "encode": 16, "store": 32,
            "record": 64, "placeholder": 128}
    monkeypatch.setattr(store, "get", clock.costing(cost["fetch"], store.get))
    monkeypatch.setattr(store, "put", clock.costing(cost["store"], store.put))
    monkeypatch.setattr(db, "finish", clock.costing(cost["record"], db.finish))
    for name, stage, real in (("decode", "decode", decode), ("render_ladder", "resize", ladder),
                              ("encode", "encode", encode),
                              ("placeholder", "placeholder", placeholder)):
        monkeypatch.setattr(f"pipeline.core.rendering.{name}", clock.costing(cost[stage], real))
    monkeypatch.setattr(filters, "apply_image", clock.costing(cost["look"], filters.apply_image))
    monkeypatch.setattr(time, "perf_counter", clock)
    before = {s: REGISTRY.get_sample_value(f"photopipe_stage_{s}_seconds_sum") or 0.0
              for s in cost}
    outcome = process(job, store, db, Settings())
    monkeypatch.undo()
    report(outcome, None)
    files = len(db.renditions(job.photo_id))  # an encode and a put for each
    expected = {**cost, "encode": cost["encode"] * files, "store": cost["store"] * files}
    assert dict(outcome.measures.timings) == expected
    observed = {s: (REGISTRY.get_sample_value(f"photopipe_stage_{s}_seconds_sum") or 0.0)
                - before[s] for s in cost}
    assert observed == pytest.approx(expected, abs=1e-9)  # sums carry earlier tests' values
