"""A small deployment for the worker tests: real `photopipe` processes, real services."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.metadata.postgres import PostgresMetadata
from pipeline.storage.s3 import S3Store

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Deployment:
    """Environment for photopipe processes, and direct handles on the same store and database."""

    env: dict[str, str]
    store: S3Store
    db: PostgresMetadata
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              check=check)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.cli("status", "--json").stdout)
        return result

    def start_worker(self, *extra: str, env: dict[str, str] | None = None
                     ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.workers)}.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker",
                                   "--concurrency", "1", *extra], env={**self.env, **(env or {})},
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.workers.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool processes at once, as an OOM killer or a lost host."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=30)


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def big_png(width: int, height: int) -> bytes:
    """A PNG of ``width`` x ``height`` made of photo tiles: slow to render whatever the looks
    cost (a PNG has no reduced-size decode), about 1.5 s at 120 MP here. Width and height are
    multiples of 2000 and 2500."""
    with Image.open(io.BytesIO(photo(98, size=(2000, 2500), fmt="PNG"))) as tile:
        pixels = np.tile(np.asarray(tile.convert("RGB")), (height // 2500, width // 2000, 1))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def photo(index: int, size: tuple[int, int] = (480, 360), fmt: str = "JPEG") -> bytes:
    """A distinct, photo-like picture (smooth gradients, an edge, some grain) per index."""
    rng = np.random.default_rng(index)
    width, height = size
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    channels = np.broadcast_arrays(x * 200 + index % 50, y * 180 + 20, (1 - x) * (1 - y) * 220)
    base = np.stack(channels, axis=-1)
    base[: height // 2, width // 3:] += 30
    if fmt == "JPEG":
        base += rng.normal(0, 6, base.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(buffer, fmt)
    return buffer.getvalue()
