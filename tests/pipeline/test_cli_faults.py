"""The service commands when something is down or set up wrong: a line that says so and an
exit status, never a traceback, and no row left `processing`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.metadata.sqlite import SqliteMetadata
from tests.helpers import PHOTOS
from tests.services import POSTGRES, free_port

ROOT = Path(__file__).resolve().parents[2]
GOOD = PHOTOS / "real" / "sony_dsc-hx5v_gps.jpg"


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOPIPE_")}
    full.update({"PHOTOPIPE_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_status_with_the_broker_down_says_so_quickly(tmp_path: Path) -> None:
    began = time.monotonic()
    result = _run(tmp_path, "status", "--json",
                  PHOTOPIPE_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    assert time.monotonic() - began < 15
    assert result.returncode == 1 and "Traceback" not in result.stderr
    status = json.loads(result.stdout)
    assert status["queue"]["depth"] is None and "Connection refused" in status["queue"]["error"]
    assert status["photos"] == {"queued": 0, "processing": 0, "ready": 0, "failed": 0}


def test_status_with_wrong_broker_credentials_says_to_check_the_url(tmp_path: Path) -> None:
    result = _run(tmp_path, "status", "--json",
                  PHOTOPIPE_BROKER_URL="amqp://guest:wrong@127.0.0.1:5672//")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "PHOTOPIPE_BROKER_URL" in json.loads(result.stdout)["queue"]["error"]


def test_a_worker_refuses_to_start_on_a_database_that_refuses_it(tmp_path: Path) -> None:
    result = _run(tmp_path, "worker", PHOTOPIPE_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",
                  PHOTOPIPE_DATABASE_URL=POSTGRES.rsplit("/", 1)[0] + "/no_such_database")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "PHOTOPIPE_DATABASE_URL" in result.stderr


def test_process_json_on_an_outage_reports_it_and_leaves_the_row_queued(tmp_path: Path) -> None:
    blocked = tmp_path / "objects"
    blocked.write_text("a file where the object store's folder should be")
    result = _run(tmp_path, "process", str(GOOD), "--json",
                  PHOTOPIPE_STORAGE_URL=f"file://{blocked}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (output,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert output["status"] == "failed" and output["error"]["code"] == "unavailable"
    assert isinstance(output["photo_id"], int)
    db = SqliteMetadata(str(tmp_path / "data" / "photopipe.db"))
    row = db.get(output["photo_id"])
    assert row is not None and row.status == "queued" and row.attempts == 1
    db.close()
    blocked.unlink()  # the store is back: the same command renders it, on the same attempt
    again = _run(tmp_path, "process", str(GOOD), "--json")
    assert json.loads(again.stdout)["status"] == "ready"
