"""Limits stop what they must before the decoder does, at exactly their values; options
reach the look."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import filters
from pipeline import render
from pipeline.core.decode import decode
from pipeline.errors import TooLarge, TooManyPixels
from pipeline.jobs import Job, process
from pipeline.metadata import NewPhoto
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.settings import Limits, Settings
from pipeline.storage.memory import MemoryStore
from tests.helpers import PHOTOS, pixels

ROOT = Path(__file__).resolve().parents[2]


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 100, 50)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_pixel_limit_stops_a_header_before_any_pixel_is_decoded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = _png(40, 30)  # far under Pillow's own bomb threshold: only our limit can stop it
    loads: list[int] = []
    original = ImageFile.ImageFile.load

    def counting_load(self: ImageFile.ImageFile) -> object:
        loads.append(1)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    with pytest.raises(TooManyPixels, match="40x30"):
        decode(data, Limits(max_pixels=40 * 30 - 1))
    assert loads == []
    assert decode(data, Limits(max_pixels=40 * 30)).image.size == (40, 30)  # at the limit
    assert loads


def test_the_byte_limit_admits_exactly_max_bytes() -> None:
    data = _png(20, 20)
    assert decode(data, Limits(max_bytes=len(data))).source.bytes == len(data)
    with pytest.raises(TooLarge):
        decode(data, Limits(max_bytes=len(data) - 1))


def test_strength_mixes_the_look_exactly() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    full = filters.apply(image, "clarendon", 1.0).astype(np.int16)
    half = filters.apply(image, "clarendon", 0.5).astype(np.int16)
    assert np.abs(half - (image.astype(np.int16) + full) / 2).max() <= 1
    assert np.array_equal(filters.apply(image, "clarendon", 0.0), image)
    assert np.abs(full - image).mean() > 5  # the look does something at full strength


def test_the_rows_strength_reaches_the_look(tmp_path: Path) -> None:
    data = (PHOTOS / "real" / "htc_desire_phone_gps.jpg").read_bytes()
    store, db = MemoryStore(), SqliteMetadata(str(tmp_path / "m.db"))
    store.put("uploads/1", data, "image/jpeg")
    results = {}
    for strength in (0.0, 1.0):
        job = db.create(NewPhoto(1, "uploads/1", "classic", "inkwell", strength))
        assert process(job, store, db, Settings()).status == "ready"
        results[strength] = pixels(store.get(db.renditions(1)[0].key))
    plain = pixels(render(data, ladder="classic").outputs["sq612.jpg"])
    assert np.abs(results[0.0] - plain).mean() < 1  # strength 0: no look at all
    grey = results[1.0]
    assert np.abs(grey[..., 0] - grey[..., 2]).mean() < 2  # inkwell at full strength is grey
    db.close()
    assert Job(1, 1).generation == 1


def test_process_good_bad_good_exits_1_with_an_id_for_every_readable_input(
        tmp_path: Path) -> None:
    good = PHOTOS / "real" / "htc_desire_phone_gps.jpg"
    bad = PHOTOS / "hostile" / "truncated_pixel6_ultrahdr_gps.jpg"
    env = {"PHOTOPIPE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "process", str(good),
                             str(bad), str(good), "--json"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["status"] for o in outputs] == ["ready", "failed", "ready"]
    assert all(isinstance(o["photo_id"], int) for o in outputs)
    assert outputs[1]["error"]["code"] == "truncated" and outputs[1]["renditions"] == []
    assert outputs[0]["photo_id"] == outputs[2]["photo_id"]
