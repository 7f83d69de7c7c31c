"""deploy/patroni/patroni.yml: Patroni accepts it, and it promises what the drills prove (the
clusters of tests/replicas/patroni.py share its replication settings)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from tests.replicas import patroni
from tests.services import free_port

DEPLOYED = Path(__file__).resolve().parents[2] / "deploy" / "patroni" / "patroni.yml"


def _dcs(config: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = config["bootstrap"]["dcs"]
    return found


def test_the_deployed_clusters_are_the_tested_ones(tmp_path: Path) -> None:
    deployed = _dcs(yaml.safe_load(DEPLOYED.read_text()))
    with patroni.etcd() as store:
        node = patroni.Node("n", tmp_path, free_port(), free_port())
        tested = _dcs(patroni._config("s", node, store, synchronous=True))
    for key in ("synchronous_mode", "synchronous_mode_strict"):
        assert deployed[key] is True and tested[key] is True, key
    assert deployed.get("synchronous_node_count", 1) == 1
    for key in ("use_pg_rewind", "use_slots"):
        assert deployed["postgresql"][key] is True and tested["postgresql"][key] is True
    parameters = deployed["postgresql"]["parameters"]
    assert parameters["wal_log_hints"] == tested["postgresql"]["parameters"]["wal_log_hints"]
    assert parameters["synchronous_commit"] == "on" and parameters["full_page_writes"] == "on"
    # the timings keep Patroni's rule: loop_wait + 2 * retry_timeout <= ttl
    for dcs in (deployed, tested):
        assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]


def test_patroni_accepts_the_deployed_configuration(tmp_path: Path) -> None:
    host = socket.gethostname()
    with patroni.etcd() as store:
        text = (DEPLOYED.read_text()
                .replace("etcd1:2379,etcd2:2379,etcd3:2379", store.address)
                .replace("0.0.0.0:5432", f"127.0.0.1:{free_port()}")
                .replace("0.0.0.0:8008", f"127.0.0.1:{free_port()}")
                .replace("db1a:", f"{host}:")
                .replace("/var/lib/postgresql/15/photopipe", str(tmp_path / "data")))
        (tmp_path / "patroni.yml").write_text(text)
        argv = [str(patroni.PATRONI / "patroni"), "--validate-config",
                str(tmp_path / "patroni.yml")]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
