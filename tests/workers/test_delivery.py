"""The production path end to end: `photopipe submit`, two worker processes, RabbitMQ (quorum
queue), PostgreSQL and S3 over HTTP (moto's server), with crashes and duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.jobs import Job
from pipeline.metadata.postgres import PostgresMetadata
from pipeline.settings import Settings
from tests.services import S3Server
from tests.workers.harness import Deployment, big_png, photo, wait_until
from workers.app import DEAD_QUEUE, make_app, queue_depth
from workers.publisher import CeleryPublisher


@pytest.fixture
def deployment(amqp_url: str, postgres_url: str, moto: S3Server,
               tmp_path: Path) -> Iterator[Deployment]:
    store = moto.store()
    env = {**__import__("os").environ, **moto.env(), "PHOTOPIPE_BROKER_URL": amqp_url,
           "PHOTOPIPE_DATABASE_URL": postgres_url,
           "PHOTOPIPE_STORAGE_URL": f"s3://{store.bucket}/{store.prefix.rstrip('/')}"}
    db = PostgresMetadata(postgres_url)
    deployed = Deployment(env, store, db, tmp_path)
    deployed.cli("db", "upgrade")
    yield deployed
    deployed.stop_all()
    db.close()


def _submit(deployment: Deployment, paths: list[Path], *extra: str) -> list[int]:
    out = deployment.cli("submit", *map(str, paths), "--user-id", "42", "--json", *extra)
    return [json.loads(line)["photo_id"] for line in out.stdout.splitlines()]


def _files(tmp_path: Path, count: int, **kwargs: object) -> list[Path]:
    paths = []
    for index in range(count):
        path = tmp_path / f"upload-{index}.jpg"
        path.write_bytes(photo(index, **kwargs))  # type: ignore[arg-type]
        paths.append(path)
    return paths


def _rendition_keys(deployment: Deployment, ids: list[int]) -> list[str]:
    return sorted(r.key for i in ids for r in deployment.db.renditions(i))


def test_200_photos_by_two_workers_every_row_has_its_object(deployment: Deployment,
                                                            tmp_path: Path) -> None:
    ids = _submit(deployment, _files(tmp_path, 200), "--filter", "clarendon")
    assert len(set(ids)) == 200
    assert deployment.status() == {"photos": {"queued": 200, "processing": 0, "ready": 0,
                                              "failed": 0}, "queue": {"depth": 200, "outbox": 0},
                                   "stuck": 0}
    deployment.start_worker()
    deployment.start_worker()
    wait_until(lambda: deployment.db.counts()["ready"] == 200, 240, "200 ready photos")
    assert deployment.status() == {"photos": {"queued": 0, "processing": 0, "ready": 200,
                                              "failed": 0}, "queue": {"depth": 0, "outbox": 0},
                                   "stuck": 0}
    keys = _rendition_keys(deployment, ids)
    assert len(keys) == 200 * 5
    assert sorted(deployment.store.list("photos/")) == keys  # every object has its row, and back
    assert len(list(deployment.store.list("originals/"))) == 200
    assert {deployment.db.get(i).attempts for i in ids} == {1}  # type: ignore[union-attr]
    for log in ("worker-0.log", "worker-1.log"):  # both workers took a share of the work
        assert (tmp_path / log).read_text().count(": ready (attempt 1)") >= 20, log


def _objects_match_rows(deployment: Deployment, ids: list[int]) -> None:
    keys = _rendition_keys(deployment, ids)
    assert sorted(deployment.store.list("photos/")) == keys


def test_a_worker_killed_mid_job_loses_nothing_and_duplicates_nothing(
        deployment: Deployment, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(big_png(12_000, 10_000))  # 120 MP, the default limit: over a second
    (photo_id,) = _submit(deployment, [big], "--filter", "rise")
    victim = deployment.start_worker()
    wait_until(lambda: deployment.db.counts()["processing"] == 1, 60, "the job to start")
    deployment.kill(victim)
    row = deployment.db.get(photo_id)
    assert row is not None and row.status == "processing"  # died mid-job: nothing recorded
    assert deployment.status()["photos"]["processing"] == 1
    deployment.start_worker()
    wait_until(lambda: deployment.db.counts()["ready"] == 1, 120, "the job to finish")
    row = deployment.db.get(photo_id)
    assert row is not None and row.attempts == 2
    keys = _rendition_keys(deployment, [photo_id])
    assert len(keys) == 5 and sorted(deployment.store.list("photos/")) == keys
    assert deployment.status()["queue"]["depth"] == 0


def test_the_same_job_twice_gives_one_result(deployment: Deployment, tmp_path: Path) -> None:
    (photo_id,) = _submit(deployment, _files(tmp_path, 1, size=(2400, 1800)))
    app = make_app(Settings.from_env(deployment.env))
    CeleryPublisher(app).publish(Job(photo_id, 1))  # delivered twice, as after a lost confirm
    assert queue_depth(app) == 2
    deployment.start_worker()
    deployment.start_worker()  # two workers: the two copies may well run at once
    wait_until(lambda: (row := deployment.db.get(photo_id)) is not None
               and row.status == "ready" and queue_depth(app) == 0, 120, "both deliveries")
    row = deployment.db.get(photo_id)

    def logs() -> str:
        return "".join((tmp_path / f"worker-{i}.log").read_text() for i in range(2))

    wait_until(lambda: logs().count(f"photo {photo_id}: ") == 2, 30, "both copies logged")
    # Either the copies ran one after the other (the second is skipped as done), or at once
    # (the later start wins, the earlier is superseded): one result either way.
    text = logs()
    assert text.count(f"photo {photo_id}: ready") == 1
    assert text.count(f"photo {photo_id}: skipped") + text.count(
        f"photo {photo_id}: superseded") == 1
    assert row is not None and row.attempts in (1, 2)
    keys = _rendition_keys(deployment, [photo_id])
    assert len(keys) == 5 and sorted(deployment.store.list("photos/")) == keys


def test_a_hostile_upload_fails_with_its_code_once_and_does_not_loop(
        deployment: Deployment, tmp_path: Path) -> None:
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "photos" / "hostile"
    ids = _submit(deployment, [fixtures / "truncated_pixel6_ultrahdr_gps.jpg",
                               fixtures / "bomb_4gpx.gif"])
    deployment.start_worker()
    wait_until(lambda: deployment.db.counts()["failed"] == 2, 60, "two failures")
    codes = [deployment.db.get(i).error_code for i in ids]  # type: ignore[union-attr]
    assert codes == ["truncated", "too_many_pixels"]
    app = make_app(Settings.from_env(deployment.env))
    wait_until(lambda: queue_depth(app) == 0, 10, "an empty queue")
    assert [deployment.db.get(i).attempts for i in ids] == [1, 1]  # type: ignore[union-attr]
    assert queue_depth(app, DEAD_QUEUE) == 0
    assert list(deployment.store.list("photos/")) == []
