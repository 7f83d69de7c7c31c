"""HA clusters of the tests' own: one etcd member and Patroni clusters of PostgreSQL nodes on
loopback (Debian's ``etcd-server``; Patroni from PyPI in ``.venv-patroni``, both installed by
``scripts/services-up``, which says why not Debian's Patroni).

Each node is a Patroni process (run as the postgres user when root) managing its own
PostgreSQL in a temporary folder; the tests kill, stop and switch them over by pid and with
``patronictl``. Timings are short (``ttl`` 8 s, ``loop_wait`` 1 s) so a failover takes seconds.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.private import PG_BIN, _as_postgres
from tests.services import free_port, wait_for_port

TTL, LOOP_WAIT, RETRY_TIMEOUT = 8, 1, 3
PATRONI = Path(__file__).resolve().parents[2] / ".venv-patroni" / "bin"


def _own(folder: Path) -> None:
    if os.getuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (folder, *folder.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)


@dataclass
class Etcd:
    """One etcd member (the consensus store Patroni keeps its leader key in)."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def etcd() -> Iterator[Etcd]:
    folder = Path(tempfile.mkdtemp(prefix="pp-etcd-"))
    client, peer = free_port(), free_port()
    log = (folder / "etcd.log").open("wb")
    process = subprocess.Popen(
        ["etcd", "--name", "pp", "--data-dir", str(folder / "data"),
         "--listen-client-urls", f"http://127.0.0.1:{client}",
         "--advertise-client-urls", f"http://127.0.0.1:{client}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"pp=http://127.0.0.1:{peer}",
         "--heartbeat-interval", "50", "--election-timeout", "500",
         "--unsafe-no-fsync"], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        wait_for_port(client, 30)
        yield Etcd(client, process)
    finally:
        process.kill()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Node:
    """One Patroni process and the PostgreSQL it manages."""

    name: str
    folder: Path
    pg_port: int
    api_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.folder / "patroni.yml"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    def start(self) -> None:
        log = (self.folder / "patroni.log").open("ab")
        argv = [str(PATRONI / "patroni"), str(self.config)]
        self.process = subprocess.Popen(_as_postgres(argv), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def postmaster(self) -> int | None:
        pid_file = self.folder / "data" / "postmaster.pid"
        with suppress(OSError, ValueError, IndexError):
            return int(pid_file.read_text().split()[0])
        return None

    def kill(self) -> None:
        """SIGKILL Patroni and its PostgreSQL together, as a lost host."""
        pid = self.postmaster()
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        if pid is not None:
            with suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # postgres runs in Patroni's session
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for _ in range(100):  # the children of the postmaster go once it has gone
            if not _listening(self.pg_port):
                return
            time.sleep(0.1)

    def patroni_pid(self) -> int:
        """Patroni's own pid (under ``runuser``, its child's)."""
        assert self.process is not None
        if os.getuid() != 0:
            return self.process.pid
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return int(children.read_text().split()[0])

    def freeze(self) -> None:
        """SIGSTOP the Patroni process only: its PostgreSQL runs on, the leader key expires."""
        os.kill(self.patroni_pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.patroni_pid(), signal.SIGCONT)

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/patroni",
                                    timeout=2) as answer:
            found: dict[str, Any] = json.load(answer)
            return found


def _listening(port: int) -> bool:
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@dataclass
class Cluster:
    """A Patroni cluster of ``len(nodes)`` PostgreSQL nodes under one scope."""

    scope: str
    etcd: Etcd
    nodes: list[Node] = field(default_factory=list)

    def url(self, database: str = "postgres") -> str:
        """The libpq multi-host URL photopipe is given: every node, the writable one wins."""
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    def members(self) -> list[dict[str, Any]]:
        for node in self.nodes:
            with suppress(OSError), urllib.request.urlopen(
                    f"http://127.0.0.1:{node.api_port}/cluster", timeout=2) as answer:
                found: list[dict[str, Any]] = json.load(answer)["members"]
                return found
        return []

    def leader(self) -> Node:
        roles = {m["name"]: m["role"] for m in self.members()}
        return next(n for n in self.nodes if roles.get(n.name) == "leader")

    def replica(self) -> Node:
        return next(n for n in self.nodes if n is not self.leader())

    def healthy(self) -> bool:
        """A leader, and every other node a streaming synchronous standby."""
        members = self.members()
        if len(members) != len(self.nodes):
            return False
        roles = sorted(m["role"] for m in members)
        return _streaming(members) and \
            roles == ["leader"] + ["sync_standby"] * (len(self.nodes) - 1)

    def wait_healthy(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.healthy():
                return
            time.sleep(0.2)
        raise AssertionError(f"cluster {self.scope} not healthy after {seconds}s: "
                             f"{self.members()}")

    def patronictl(self, *args: str) -> str:
        argv = [str(PATRONI / "patronictl"), "-c", str(self.nodes[0].config), *args]
        done = subprocess.run(_as_postgres(argv), capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _config(scope: str, node: Node, store: Etcd, synchronous: bool) -> dict[str, Any]:
    # fsync off is safe against the process crashes the tests make (the kernel keeps what
    # was written); full_page_writes stays on, pg_rewind needs it.
    parameters = {"shared_buffers": "16MB", "max_connections": 60, "fsync": "off",
                  "wal_log_hints": "on", "max_wal_senders": 5,
                  "max_replication_slots": 5, "wal_keep_size": "64MB",
                  "unix_socket_directories": str(node.folder)}
    return {
        "scope": scope, "namespace": "/photopipe/", "name": node.name,
        "log": {"level": "INFO"},
        "restapi": {"listen": f"127.0.0.1:{node.api_port}",
                    "connect_address": f"127.0.0.1:{node.api_port}"},
        "etcd3": {"host": store.address},
        "bootstrap": {
            "dcs": {"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 16 << 20,
                    "synchronous_mode": synchronous, "synchronous_mode_strict": synchronous,
                    "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                   "parameters": parameters}},
            "initdb": [{"encoding": "UTF8"}, "no-sync"],
            "pg_hba": ["local all all trust", "host all all 127.0.0.1/32 trust",
                       "host replication all 127.0.0.1/32 trust"]},
        "postgresql": {
            "listen": f"127.0.0.1:{node.pg_port}",
            "connect_address": f"127.0.0.1:{node.pg_port}",
            "data_dir": str(node.folder / "data"), "bin_dir": str(PG_BIN),
            "pgpass": str(node.folder / "pgpass"),
            "authentication": {"superuser": {"username": "postgres", "password": "postgres"},
                               "replication": {"username": "replicator",
                                               "password": "replicator"},
                               "rewind": {"username": "postgres", "password": "postgres"}},
            "parameters": {"unix_socket_directories": str(node.folder)}},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False}}


@contextmanager
def cluster(scope: str, store: Etcd, size: int = 2, synchronous: bool = True
            ) -> Iterator[Cluster]:
    """A Patroni cluster of ``size`` nodes, healthy (its standbys synchronous when
    ``synchronous``) before it is yielded; every node killed and removed afterwards."""
    found = Cluster(scope, store)
    with ExitStack() as stack:
        for index in range(size):
            folder = Path(tempfile.mkdtemp(prefix=f"pp-{scope}-{index}-"))
            stack.callback(shutil.rmtree, folder, True)
            node = Node(f"{scope}-{index}", folder, free_port(), free_port())
            node.config.write_text(json.dumps(_config(scope, node, store, synchronous)))
            _own(folder)
            stack.callback(node.kill)
            found.nodes.append(node)
        found.nodes[0].start()  # the first bootstraps; the others clone from it
        wait_for_port(found.nodes[0].pg_port, 60)
        for node in found.nodes[1:]:
            node.start()
        found.wait_healthy() if synchronous else _wait_streaming(found)
        yield found


def _wait_streaming(found: Cluster, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        members = found.members()
        if len(members) == len(found.nodes) and _streaming(members):
            return
        time.sleep(0.2)
    raise AssertionError(f"cluster {found.scope} not streaming: {found.members()}")


def _streaming(members: list[dict[str, Any]]) -> bool:
    """A running leader, and every other member streaming from it."""
    return sum(m["role"] == "leader" and m.get("state") == "running" for m in members) == 1 \
        and all(m.get("state") == "streaming" for m in members if m["role"] != "leader")
