"""What an operator sees of the replicas: `photopipe shards list` (each server's primary, its
standbys, their lag and sync state), `photopipe health` (fails when a cluster has no
synchronous standby; a lone server is no cluster) and the exporter's gauges, on a Patroni
cluster of the tests' own that loses its standby and gets it back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.replicas import patroni
from tests.services import free_port
from tests.workers.harness import ROOT, wait_until


@pytest.fixture(scope="module")
def cluster() -> Iterator[patroni.Cluster]:
    with patroni.etcd() as store, patroni.cluster("ops", store) as found:
        yield found


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def _health(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    out = _cli(env, "health", "--json", "--timeout", "5")
    return out.returncode, json.loads(out.stdout)


def _gauges(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples
            if s.name.startswith("photopipe_database_")}


def test_shards_list_health_and_gauges_follow_a_cluster_losing_its_standby(
        cluster: patroni.Cluster, tmp_path: Path) -> None:
    url = cluster.create_database(f"t_{uuid.uuid4().hex[:10]}")
    env = {**os.environ, "PHOTOPIPE_DATA_DIR": str(tmp_path), "PHOTOPIPE_DATABASE_URL": url,
           "PHOTOPIPE_READ_FROM_STANDBYS": "1"}
    assert _cli(env, "shards", "init", "--logical", "4", url).returncode == 0
    leader, replica = cluster.leader(), cluster.replica()
    where = url.rsplit("@", 1)[-1]

    code, health = _health(env)
    assert code == 0 and health["ready"] is True and health["no_synchronous_standby"] == []
    assert health["checks"]["replication"]["ok"] is True
    listed = json.loads(_cli(env, "shards", "list", "--json").stdout)
    (server,) = listed["servers"]
    assert server["url"] == where and server["primary"] == f"127.0.0.1:{leader.pg_port}"
    assert server["ha"] is True and server["synchronous"] is True
    (standby,) = server["standbys"]
    assert (standby["name"], standby["address"], standby["state"], standby["sync_state"]) == (
        replica.name, "127.0.0.1", "streaming", "sync")
    assert isinstance(standby["lag_bytes"], int) and standby["lag_bytes"] >= 0

    port = free_port()
    exporter = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "exporter", "--port",
                                 str(port), "--host", "127.0.0.1"], env=env, cwd=ROOT,
                                stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _scrapes(port), 60, "the exporter")
        gauges = _gauges(port)
        assert gauges[("photopipe_database_cluster", (("database", where),))] == 1
        assert gauges[("photopipe_database_standbys",
                       (("database", where), ("sync_state", "sync")))] == 1
        assert ("photopipe_database_standby_lag_bytes",
                (("database", where), ("standby", replica.name))) in gauges
        assert gauges[("photopipe_database_standby_replay_lag_seconds",
                       (("database", where), ("standby", replica.name)))] >= 0
        # the exporter's backlog is read on the standby, and counted so
        assert gauges.get(("photopipe_database_reads_total", (("role", "standby"),)), 0) > 0
        assert ("photopipe_database_reads_total", (("role", "primary"),)) not in gauges

        replica.kill()  # the cluster's only standby is gone
        wait_until(lambda: _health(env)[0] == 1, 60, "health to fail")
        code, health = _health(env)
        assert health["ready"] is False and health["no_synchronous_standby"] == [where]
        assert health["checks"]["replication"]["ok"] is True  # the server answers
        plain = _cli(env, "health").stdout
        assert f"replication: NO SYNCHRONOUS STANDBY for {where}" in plain
        assert plain.splitlines()[-1] == "not ready"
        assert "no standby  NO SYNCHRONOUS STANDBY" in _cli(env, "shards", "list").stdout
        wait_until(lambda: _gauges(port).get(("photopipe_database_standbys", (
            ("database", where), ("sync_state", "sync")))) == 0, 30, "the gauge to drop")

        replica.start()
        cluster.wait_healthy()
        wait_until(lambda: _health(env)[0] == 0, 60, "health to pass again")
    finally:
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=30) == 0


def _scrapes(port: int) -> bool:
    try:
        return bool(_gauges(port))
    except OSError:
        return False


def test_a_lone_server_is_no_cluster_and_needs_no_standby(postgres_url: str,
                                                          tmp_path: Path) -> None:
    env = {**os.environ, "PHOTOPIPE_DATA_DIR": str(tmp_path),
           "PHOTOPIPE_DATABASE_URL": postgres_url}
    assert _cli(env, "db", "upgrade").returncode == 0
    code, health = _health(env)
    assert code == 0 and health["ready"] is True and health["no_synchronous_standby"] == []
    assert health["checks"]["replication"]["ok"] is True
