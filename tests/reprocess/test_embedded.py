"""`photopipe reprocess` and `photopipe gc` on the embedded default (SQLite, a local folder,
--local), run as a user runs them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline import reprocess
from pipeline.core import ladders
from pipeline.core.spec import render_spec
from pipeline.metadata import NewPhoto, Selection
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.settings import Encoding
from tests.workers.harness import photo

ROOT = Path(__file__).resolve().parents[2]


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOPIPE_")}
    env["PHOTOPIPE_DATA_DIR"] = str(data)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def rendered(tmp_path: Path) -> Iterator[tuple[Path, list[int]]]:
    """Twelve photos processed: six on the default ladder, six on the classic one."""
    data = tmp_path / "data"
    ids = []
    for ladder, first in (("default", 0), ("classic", 6)):
        paths = []
        for index in range(first, first + 6):
            paths.append(tmp_path / f"{index}.jpg")
            paths[-1].write_bytes(photo(index, size=(320, 240)))
        out = _cli(data, "process", *map(str, paths), "--ladder", ladder, "--json")
        assert out.returncode == 0, out.stderr
        ids += [json.loads(line)["photo_id"] for line in out.stdout.splitlines()]
    yield data, ids


def _snapshot(data: Path) -> tuple[list[object], dict[str, str]]:
    db = SqliteMetadata(str(data / "photopipe.db"))
    rows = [db.get(i) for i in sorted(r.id for r in db.scan(Selection(), 0, 1000))]
    renditions = [db.renditions(r.id) for r in rows if r]
    db.close()
    objects = {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in sorted((data / "objects").rglob("*")) if p.is_file()}
    return [rows, renditions], objects


def test_dry_run_changes_nothing_and_counts(rendered: tuple[Path, list[int]]) -> None:
    data, ids = rendered
    before = _snapshot(data)
    out = _cli(data, "reprocess", "--dry-run", "--set-filter", "clarendon", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["photos"] == 12 and report["by_status"] == {"ready": 12}
    assert report["by_look"] == {"none": 12} and set(report["sample"]) <= set(ids)
    assert report["estimate"]["cpu_seconds"] > 0 and report["estimate"]["source_bytes"] > 0
    assert _snapshot(data) == before


def test_local_reprocess_renders_every_photo_once_with_the_new_look(
        rendered: tuple[Path, list[int]]) -> None:
    data, ids = rendered
    out = _cli(data, "reprocess", "--local", "--set-filter", "clarendon", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["done"], summary["failed"], summary["skipped"], summary["pending"]) == (
        12, {}, 0, 0)
    db = SqliteMetadata(str(data / "photopipe.db"))
    keys = []
    for photo_id in ids:
        row = db.get(photo_id)
        assert row is not None and (row.status, row.filter, row.generation) == (
            "ready", "clarendon", 2)
        assert row.spec == render_spec(row.ladder, "clarendon", 1.0, Encoding())
        keys += [r.key for r in db.renditions(photo_id)]
        assert all(f"/2.{row.lease}/" in r.key for r in db.renditions(photo_id))
    db.close()
    objects = sorted(str(p.relative_to(data / "objects")) for p in
                     (data / "objects" / "photos").rglob("*") if p.is_file())
    assert objects == sorted(keys)  # the first generation's objects are gone
    again = json.loads(_cli(data, "reprocess", "--local", "--set-filter", "clarendon",
                            "--stale", "--json").stdout)
    assert again["enqueued"] == 0  # nothing is stale any more
    listed = _cli(data, "reprocess", "--list", "--json")
    assert [r["state"] for r in json.loads(listed.stdout)] == ["done", "done"]
    gc = json.loads(_cli(data, "gc", "--json").stdout)
    assert gc == {"examined": len(keys), "orphans": 0, "deleted": 0, "expired_uploads": 0,
                  "stray_chunks": 0}


def test_stale_selects_exactly_the_photos_of_a_changed_ladder(
        rendered: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    data, ids = rendered
    db = SqliteMetadata(str(data / "photopipe.db"))
    request = reprocess.Request(stale=True)
    assert reprocess.dry_run(db, request, Encoding()).photos == 0
    found, = _with_classic_changed(monkeypatch, lambda: reprocess.dry_run(db, request,
                                                                          Encoding()))
    assert found.photos == 6 and set(found.sample) == set(ids[6:])
    db.close()


def test_gc_removes_what_a_crashed_render_left_and_nothing_else(
        rendered: tuple[Path, list[int]]) -> None:
    data, ids = rendered
    db = SqliteMetadata(str(data / "photopipe.db"))
    row = db.get(ids[0])
    db.close()
    assert row is not None
    orphan = data / "objects" / "photos" / str(ids[0]) / f"1.{row.lease - 1}" / "w1080.jpg"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a render that died before its commit")
    before = _snapshot(data)[1]
    assert json.loads(_cli(data, "gc", "--dry-run", "--json").stdout)["orphans"] == 1
    assert _snapshot(data)[1] == before
    assert json.loads(_cli(data, "gc", "--json").stdout)["deleted"] == 1
    assert not orphan.exists() and len(_snapshot(data)[1]) == len(before) - 1


def test_stale_takes_ready_photos_only_never_failed_or_queued_ones(
        rendered: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed photo's verdict is not undone by a new spec, and a queued one will be rendered
    with the spec of its own time: neither is stale, whatever spec its row holds."""
    data, ids = rendered
    db = SqliteMetadata(str(data / "photopipe.db"))
    failed, queued = ids[6], ids[7]  # classic photos, so their ladder's change concerns them
    claim = db.start(db.create(NewPhoto(failed, f"originals/{failed}", "classic")))
    db.fail(failed, claim.lease, "corrupt", "a verdict")
    db.create(NewPhoto(queued, f"originals/{queued}", "classic"))
    never = 990
    db.create(NewPhoto(never, "originals/990", "classic"))  # queued, never rendered: no spec
    found, every = _with_classic_changed(
        monkeypatch, lambda: reprocess.dry_run(db, reprocess.Request(stale=True), Encoding()),
        lambda: reprocess.dry_run(db, reprocess.Request(), Encoding()))
    assert found.photos == 4 and found.by_status == {"ready": 4}
    assert set(found.sample) == set(ids[8:12])
    assert every.photos == 13 and every.by_status == {"ready": 10, "failed": 1, "queued": 2}
    db.close()


def _with_classic_changed(monkeypatch: pytest.MonkeyPatch,
                          *calls: Callable[[], reprocess.DryRun]) -> list[reprocess.DryRun]:
    """Each call's answer while the classic ladder's last rendition is another (its spec, and
    so every classic photo's, no longer what it was)."""
    classic = ladders.get("classic")
    changed = {**ladders.LADDERS, "classic": (*classic[:2], ladders.Rendition("sq160", 160,
                                                                               True))}
    monkeypatch.setattr(ladders, "LADDERS", changed)
    render_spec.cache_clear()
    try:
        return [call() for call in calls]
    finally:
        render_spec.cache_clear()
