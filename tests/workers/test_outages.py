"""Outages and the other broker: transient failures retry with backoff and lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from pipeline.metadata.postgres import PostgresMetadata
from tests import private
from tests.services import S3Server
from tests.workers.harness import Deployment, photo, wait_until
from tests.workers.proxy import Proxy


def _deploy(broker: str, postgres_url: str, moto: S3Server, tmp_path: Path,
            endpoint: str | None = None) -> Deployment:
    store = moto.store()
    env = {**os.environ, **moto.env(), "PHOTOPIPE_BROKER_URL": broker,
           "PHOTOPIPE_DATABASE_URL": postgres_url,
           "PHOTOPIPE_STORAGE_URL": f"s3://{store.bucket}/{store.prefix.rstrip('/')}"}
    if endpoint:
        env["PHOTOPIPE_S3_ENDPOINT_URL"] = endpoint
    deployed = Deployment(env, store, PostgresMetadata(postgres_url), tmp_path)
    deployed.cli("db", "upgrade")
    return deployed


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis server of this test's own: the shared one is never flushed."""
    with private.redis() as url:
        yield url


def test_s3_outage_during_a_job_is_retried_until_it_succeeds(
        amqp_url: str, postgres_url: str, moto: S3Server, tmp_path: Path) -> None:
    proxy = Proxy(int(urlsplit(moto.endpoint).port or 0))
    deployment = _deploy(amqp_url, postgres_url, moto, tmp_path, endpoint=proxy.url)
    try:
        upload = tmp_path / "upload.jpg"
        upload.write_bytes(photo(3))
        photo_id = int(deployment.cli("submit", str(upload), "--user-id", "1").stdout
                       .split(":")[1])
        proxy.down()
        deployment.start_worker()
        wait_until(lambda: (r := deployment.db.get(photo_id)) is not None and r.lease >= 2,
                   60, "a first retry")
        row = deployment.db.get(photo_id)
        assert row is not None and row.status in ("queued", "processing")  # not failed
        proxy.up()
        wait_until(lambda: deployment.db.counts()["ready"] == 1, 180, "the retried job")
        row = deployment.db.get(photo_id)
        assert row is not None and row.attempts == 1  # waiting out the outage cost none
        assert len(list(deployment.store.list("photos/"))) == 5
        log = (tmp_path / "worker-0.log").read_text()
        assert "StorageUnavailable" in log and "Retry in" in log
    finally:
        deployment.stop_all()
        deployment.db.close()
        proxy.down()


def test_redis_broker_runs_the_same_jobs(redis_url: str, postgres_url: str, moto: S3Server,
                                         tmp_path: Path) -> None:
    deployment = _deploy(redis_url, postgres_url, moto, tmp_path)
    try:
        paths = []
        for index in range(3):
            paths.append(tmp_path / f"{index}.jpg")
            paths[-1].write_bytes(photo(index))
        deployment.cli("submit", *map(str, paths), "--user-id", "5")
        assert deployment.status()["queue"]["depth"] == 3
        assert redis.Redis.from_url(redis_url).llen("photopipe.photos") == 3
        deployment.start_worker()
        wait_until(lambda: deployment.db.counts()["ready"] == 3, 90, "three ready photos")
        assert deployment.status()["queue"]["depth"] == 0
        assert len(list(deployment.store.list("photos/"))) == 15
    finally:
        deployment.stop_all()
        deployment.db.close()


def test_worker_without_broker_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PHOTOPIPE_BROKER_URL"}
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "worker"], env=env,
                            capture_output=True, text=True, timeout=60, check=False,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2 and "PHOTOPIPE_BROKER_URL is not set" in result.stderr
