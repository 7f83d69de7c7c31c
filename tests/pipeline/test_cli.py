"""The photopipe command, run as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import filters
from tests.helpers import PHOTOS

GOOD = PHOTOS / "real" / "sony_dsc-hx5v_gps.jpg"
BAD = PHOTOS / "hostile" / "truncated_photo.jpg"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PHOTOPIPE_DATA_DIR": str(tmp_path / "data")}
    for name in ("PHOTOPIPE_STORAGE_URL", "PHOTOPIPE_DATABASE_URL", "PHOTOPIPE_BROKER_URL"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_process_json_contract_and_exit_status(tmp_path: Path) -> None:
    result = _run(tmp_path, "process", str(GOOD), str(BAD), "--json")
    assert result.returncode == 1, result.stderr
    good, bad = (json.loads(line) for line in result.stdout.splitlines())
    assert set(good) == {"path", "photo_id", "status", "error", "renditions"}
    assert good["path"] == str(GOOD) and good["status"] == "ready" and good["error"] is None
    assert isinstance(good["photo_id"], int)
    assert [(r["name"], r["format"]) for r in good["renditions"]] == [
        ("w1080", "jpg"), ("w1080", "webp"), ("w640", "jpg"), ("w320", "jpg"), ("sq150", "jpg")]
    for rendition in good["renditions"]:
        assert set(rendition) == {"name", "format", "key", "width", "height", "bytes"}
        path = tmp_path / "data" / "objects" / rendition["key"]
        assert path.stat().st_size == rendition["bytes"]
        with Image.open(path) as image:
            assert image.size == (rendition["width"], rendition["height"])
    assert bad["status"] == "failed" and bad["renditions"] == []
    assert bad["error"]["code"] == "truncated" and bad["error"]["message"]


def test_process_exits_zero_when_everything_renders(tmp_path: Path) -> None:
    result = _run(tmp_path, "process", str(GOOD), "--ladder", "classic")
    assert result.returncode == 0, result.stderr
    assert "sq612.jpg 547x547" in result.stdout  # never upscaled past the short side
    assert f"Thumbnails are in {tmp_path / 'data' / 'objects'}" in result.stdout


def test_show_prints_the_row_and_its_renditions(tmp_path: Path) -> None:
    photo_id = json.loads(_run(tmp_path, "process", str(GOOD), "--json").stdout)["photo_id"]
    shown = json.loads(_run(tmp_path, "show", str(photo_id), "--json").stdout)
    assert shown["id"] == photo_id and shown["status"] == "ready"
    assert shown["source"]["format"] == "JPEG" and len(shown["renditions"]) == 5
    assert set(shown["placeholder"]) == {"thumbhash", "color", "aspect"}
    largest = shown["renditions"][0]
    aspect = shown["placeholder"]["aspect"]
    assert aspect == round(largest["width"] / largest["height"], 4)
    text = _run(tmp_path, "show", str(photo_id)).stdout
    assert f"photo {photo_id}: ready" in text and "w640.jpg 640x480" in text
    assert f"placeholder {shown['placeholder']['color']}, aspect {aspect:g}" in text
    missing = _run(tmp_path, "show", "1")
    assert missing.returncode == 1 and "no photo 1" in missing.stderr


def test_failed_input_has_a_row_but_no_traceback(tmp_path: Path) -> None:
    result = _run(tmp_path, "process", str(BAD))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "failed (truncated)" in result.stdout


def test_unreadable_path_and_bad_options(tmp_path: Path) -> None:
    missing = json.loads(_run(tmp_path, "process", str(tmp_path / "nope.jpg"), "--json").stdout)
    assert missing["status"] == "failed" and missing["error"]["code"] == "unreadable"
    assert _run(tmp_path, "process", str(GOOD), "--strength", "2").returncode == 2
    unknown = _run(tmp_path, "process", str(GOOD), "--filter", "sparkle")
    assert unknown.returncode == 2 and "unknown filter 'sparkle'" in unknown.stderr


def test_filters_lists_every_look(tmp_path: Path) -> None:
    result = _run(tmp_path, "filters")
    assert result.returncode == 0
    assert result.stdout.split() == filters.names()


def test_preview_writes_a_labelled_contact_sheet(tmp_path: Path) -> None:
    out = tmp_path / "sheet.jpg"
    result = _run(tmp_path, "preview", str(GOOD), "--out", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as sheet:
        assert sheet.format == "JPEG" and sheet.width >= 6 * 200
        cells = np.asarray(sheet.convert("RGB"), dtype=np.float32)
    # Every look differs from its neighbour cell, so the sheet is not one picture repeated.
    first, second = cells[:200, :200], cells[:200, 240:440]
    assert np.abs(first - second).mean() > 2
    bad = _run(tmp_path, "preview", str(BAD), "--out", str(tmp_path / "x.jpg"))
    assert bad.returncode == 1 and "truncated" in bad.stderr


def test_process_with_a_look_records_it(tmp_path: Path) -> None:
    result = _run(tmp_path, "process", str(GOOD), "--filter", "1977", "--strength", "0.7",
                  "--json")
    photo_id = json.loads(result.stdout)["photo_id"]
    shown = json.loads(_run(tmp_path, "show", str(photo_id), "--json").stdout)
    assert (shown["filter"], shown["strength"]) == ("1977", 0.7)
