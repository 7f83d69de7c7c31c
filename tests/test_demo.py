"""`make demo` does what the README promises: it says where the thumbnails went, and they open."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_make_demo_prints_where_the_thumbnails_went(tmp_path: Path) -> None:
    result = subprocess.run(["make", "-s", "demo", f"DEMO_DIR={tmp_path}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=True)
    places = set(re.findall(r"^Thumbnails are in (\S+)$", result.stdout, re.MULTILINE))
    assert places == {f"{tmp_path / 'objects'}/photos/"}
    files = sorted(p for p in Path(places.pop()).rglob("*.*") if p.is_file())
    samples = len(list((ROOT / "samples").glob("*.jpg")))
    assert len(files) == samples * 5  # the default ladder
    for path in files:
        with Image.open(path) as image:
            image.load()
            assert image.format in ("JPEG", "WEBP") and not image.getexif()
