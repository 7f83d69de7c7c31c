"""/readyz follows each dependency: it turns not-ready within seconds of the broker, the
database or S3 going away (cut at a proxy of the test's own, the shared servers untouched),
names which one, and turns ready again once it is back; the worker keeps running and
processing throughout. `photopipe health --json` says the same and exits non-zero."""

from __future__ import annotations

import functools
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.metadata.postgres import PostgresMetadata
from tests.faults.harness import deploy, files, settle, submit
from tests.services import S3Server, free_port
from tests.workers.harness import Deployment, wait_until
from tests.workers.proxy import Proxy

CHECKS = ("broker", "metadata", "storage")


def _via(url: str, proxy: Proxy) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)
    netloc = (host[0] + "@" if len(host) == 2 else "") + f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _down_only(port: int, name: str) -> bool:
    status, body = _readyz(port)
    return status == 503 and {c: body["checks"][c]["ok"] for c in CHECKS} == {
        c: c != name for c in CHECKS}


def _health(deployment: Deployment) -> tuple[int, dict[str, Any]]:
    out = deployment.cli("health", "--json", "--timeout", "3", check=False)
    return out.returncode, json.loads(out.stdout)


def test_readyz_follows_each_dependency_away_and_back(
        amqp_url: str, postgres_url: str, moto: S3Server, tmp_path: Path) -> None:
    proxies = {"broker": Proxy(urlsplit(amqp_url).port or 5672),
               "metadata": Proxy(urlsplit(postgres_url).port or 5432),
               "storage": Proxy(urlsplit(moto.endpoint).port or 0)}
    deployment = deploy(tmp_path, _via(amqp_url, proxies["broker"]),
                        _via(postgres_url, proxies["metadata"]), moto,
                        endpoint=proxies["storage"].url)
    deployment.db.close()
    deployment.db = PostgresMetadata(postgres_url)  # the test's own view, never cut
    port = free_port()
    try:
        worker = deployment.start_worker("--metrics-port", str(port), "--metrics-host",
                                         "127.0.0.1")
        wait_until(lambda: _ready(port), 90, "the worker to be ready")
        assert _health(deployment)[0] == 0
        for name, proxy in proxies.items():
            proxy.down()
            cut = time.monotonic()
            wait_until(functools.partial(_down_only, port, name), 15,
                       f"/readyz to report {name}")
            assert time.monotonic() - cut < 10
            code, health = _health(deployment)
            assert code == 1 and health["ready"] is False
            assert {c: health["checks"][c]["ok"] for c in CHECKS} == {
                c: c != name for c in CHECKS}
            assert worker.poll() is None and _get(port, "/healthz") == 200
            proxy.up()
            wait_until(lambda: _ready(port), 60, f"/readyz after {name} came back")
        ids = submit(deployment, files(tmp_path, 3))
        settle(deployment, ids, 120)  # the same worker, still at work
        assert deployment.db.counts()["ready"] == 3 and worker.poll() is None
    finally:
        deployment.stop_all()
        deployment.db.close()
        for proxy in proxies.values():
            proxy.down()


def _ready(port: int) -> bool:
    try:
        return _readyz(port)[0] == 200
    except OSError:
        return False


def _get(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        return int(reply.status)
