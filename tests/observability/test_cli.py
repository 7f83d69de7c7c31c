"""`photopipe health` and `photopipe exporter` on the embedded default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from pipeline.metadata import NewPhoto
from pipeline.metadata.sqlite import SqliteMetadata
from tests.services import free_port
from tests.workers.harness import ROOT, wait_until


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_health_json_on_the_embedded_default(tmp_path: Path) -> None:
    env = {**os.environ, "PHOTOPIPE_DATA_DIR": str(tmp_path)}
    out = _cli(env, "health", "--json")
    health = json.loads(out.stdout)
    assert out.returncode == 0 and health["ready"] is True
    assert set(health["checks"]) == {"metadata", "storage"}
    plain = _cli(env, "health")
    assert plain.returncode == 0 and plain.stdout.splitlines()[-1] == "ready"


def test_health_exits_non_zero_and_says_what_is_down(tmp_path: Path) -> None:
    env = {**os.environ, "PHOTOPIPE_DATA_DIR": str(tmp_path),
           "PHOTOPIPE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//"}
    out = _cli(env, "health", "--json", "--timeout", "4")
    health = json.loads(out.stdout)
    assert out.returncode == 1 and health["ready"] is False
    assert {name: c["ok"] for name, c in health["checks"].items()} == {
        "metadata": True, "storage": True, "broker": False}
    assert health["checks"]["broker"]["error"]


def test_exporter_serves_the_backlog_without_a_worker(tmp_path: Path) -> None:
    db = SqliteMetadata(str(tmp_path / "photopipe.db"))
    db.create(NewPhoto(1, "originals/1"))
    db.create(NewPhoto(2, "originals/2"))
    db.close()
    port = free_port()
    env = {**os.environ, "PHOTOPIPE_DATA_DIR": str(tmp_path)}
    exporter = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "exporter", "--port",
                                 str(port), "--host", "127.0.0.1"], env=env, cwd=ROOT,
                                stderr=subprocess.PIPE, text=True)
    try:
        def scraped() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                            timeout=5) as reply:
                    return str(reply.read().decode())
            except OSError:
                return None

        wait_until(lambda: scraped() is not None, 60, "the exporter")
        text = scraped() or ""
        assert "photopipe_backlog_photos 2.0" in text and "photopipe_outbox_jobs 2.0" in text
        assert 'photopipe_ready{check="metadata"} 1.0' in text
        assert "photopipe_jobs_total" not in text  # no jobs run here: no job metrics
    finally:
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=30) == 0
