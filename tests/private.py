"""Private instances of the services, for tests that stop, restart or break one.

The machine's PostgreSQL, RabbitMQ and Redis are shared; a test that takes a service away
starts its own here, on free loopback ports and in temporary folders, and stops it by pid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.services import free_port, wait_for_port

PG_BIN = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]) if Path(
    "/usr/lib/postgresql").is_dir() else Path("/usr/bin")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _as_postgres(argv: list[str]) -> list[str]:
    """Run as the postgres user when root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.getuid() == 0 else argv


@dataclass
class Postgres:
    """A PostgreSQL server of a test's own: initdb, pg_ctl, a free port."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"),
                                     "-w", "-t", "60", *args]), check=True,
                       capture_output=True)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")  # safe against a process crash
        self._ctl("-l", str(self.folder / "log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def restart_immediately(self, down_for: float = 1.0) -> None:
        """Crash-stop (``-m immediate``: every connection dies at once), wait, start again."""
        self.stop("immediate")
        time.sleep(down_for)
        self.start()


@contextmanager
def postgres() -> Iterator[Postgres]:
    with _server(lambda data: [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U",
                               "postgres", "--no-sync"]) as server:
        yield server


@contextmanager
def standby(primary: Postgres, *, apply_delay: str = "0") -> Iterator[Postgres]:
    """A streaming standby of ``primary`` (pg_basebackup -R) replaying what it receives
    ``apply_delay`` late (``recovery_min_apply_delay``: a standby lagging on purpose)."""
    def backup(data: Path) -> list[str]:
        return [str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                "-U", "postgres", "-D", str(data), "-R", "-X", "stream", "-c", "fast", "--no-sync"]

    with _server(backup, f"recovery_min_apply_delay = '{apply_delay}'\n") as server:
        yield server


@contextmanager
def _server(create: Callable[[Path], list[str]], settings: str = "") -> Iterator[Postgres]:
    folder = Path(tempfile.mkdtemp(prefix="pp-pg-"))
    if os.getuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    server = Postgres(folder, free_port())
    subprocess.run(_as_postgres(create(folder / "data")), check=True, capture_output=True)
    if settings:
        with (folder / "data" / "postgresql.auto.conf").open("a") as conf:
            conf.write(settings)
    server.start()
    try:
        yield server
    finally:
        pid_file = folder / "data" / "postmaster.pid"
        if pid_file.exists():
            _kill(int(pid_file.read_text().split()[0]))
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Rabbit:
    """A RabbitMQ node of a test's own: its own name, ports, data folder and cookie."""

    folder: Path
    port: int
    env: dict[str, str]
    pid: int = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ctl(self, *args: str) -> None:
        subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.env["RABBITMQ_NODENAME"],
                        *args], env=self.env, check=True, capture_output=True, timeout=120)

    def pause(self) -> None:
        """Stop the broker (its listeners and every connection), keeping the node's data."""
        self.ctl("stop_app")

    def resume(self) -> None:
        self.ctl("start_app")
        wait_for_port(self.port, 60)


@contextmanager
def rabbit() -> Iterator[Rabbit]:
    folder = Path(tempfile.mkdtemp(prefix="pp-rabbit-"))
    port, dist = free_port(), free_port()
    name = f"pp{port}@localhost"
    (folder / "enabled_plugins").write_text("[].\n")
    env = {**os.environ, "HOME": str(folder), "RABBITMQ_NODENAME": name,
           "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(port),
           "RABBITMQ_DIST_PORT": str(dist), "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
           "RABBITMQ_LOG_BASE": str(folder / "log"), "RABBITMQ_PID_FILE": str(folder / "pid"),
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
           "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
           "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config")}
    (folder / "rabbitmq.conf").write_text("loopback_users = none\n")
    process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    node = Rabbit(folder, port, env, process.pid)
    try:
        wait_for_port(port, 120)
        node.ctl("await_startup")
        yield node
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for pid_file in [folder / "pid"]:
            if pid_file.exists() and pid_file.read_text().strip().isdigit():
                _kill(int(pid_file.read_text().strip()))
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def redis() -> Iterator[str]:
    """A Redis server of a test's own (nothing on disk); yields its URL."""
    port = free_port()
    process = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass
class Bouncer:
    """pgbouncer in transaction pooling mode in front of one PostgreSQL server."""

    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@contextmanager
def pgbouncer(target_port: int) -> Iterator[Bouncer]:
    """Debian's pgbouncer on a free port, pooling transactions onto ``target_port``."""
    folder = Path(tempfile.mkdtemp(prefix="pp-pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n* = host=127.0.0.1 port={target_port}\n\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\npool_mode = transaction\n"
        "max_client_conn = 500\ndefault_pool_size = 8\nunix_socket_dir =\n"
        f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n"
        "ignore_startup_parameters = extra_float_digits,options\n")
    if os.getuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (folder, *folder.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
    process = subprocess.Popen(_as_postgres(["/usr/sbin/pgbouncer", str(folder / "pgbouncer.ini")]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for_port(port, 30)
        yield Bouncer(port)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
