"""`photopipe serve` as a user runs it: a real process on a free loopback port, and raw HTTP
to it (http.client, or a socket where a client must misbehave)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.services import free_port, wait_for_port
from tests.workers.harness import ROOT


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         response.read())
        finally:
            connection.close()

    def kill(self) -> None:
        """SIGKILL the server and its processes at once, as a lost host."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def raw(self, data: bytes, *, close_after: float | None = None) -> bytes:
        """Send ``data`` as is and read the reply until the server closes (or a timeout)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(data)
            received = b""
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                while chunk := sock.recv(65536):
                    received += chunk
            return received


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path, *extra: str) -> Iterator[Server]:
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--port",
                                    str(port), *extra], env=env, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, 60)
        yield Server(port, env, process)
    finally:
        with contextlib.suppress(ProcessLookupError):  # a test may have killed it already
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def embedded(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of the embedded default in ``data_dir`` (no broker, SQLite, a folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOPIPE_")}
    return {**env, "PHOTOPIPE_DATA_DIR": str(data_dir),
            "PHOTOPIPE_METRICS_DIR": str(data_dir / "metrics"), **extra}
