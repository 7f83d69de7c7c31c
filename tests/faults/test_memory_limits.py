"""Large good photos under a memory limit end ``ready`` or ``out_of_memory``, never ``corrupt``
or ``truncated``; truly bad files keep their verdict under the same limits. The limits are the
ones containers use: an address-space limit (``prlimit --as``) and a memory cgroup (v1 or v2,
whichever the machine has), each on a real ``photopipe process``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from pipeline.core import memory
from pipeline.metadata import Selection
from pipeline.metadata.sqlite import SqliteMetadata
from tests.faults.harness import Check, report

MB = 1 << 20
GOOD = ("big.jpg", "big.png", "big.webp")
BAD = {"cut.jpg": "truncated", "scrambled.png": "corrupt", "scrambled.webp": "corrupt"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 MP photos of each format (smooth, so they stay small on disk), and bad files of a
    few megapixels whose headers read well."""
    folder = tmp_path_factory.mktemp("memory")
    side = 10_000
    ramp = Image.linear_gradient("L").resize((side, side), Image.Resampling.BILINEAR)
    ring = Image.radial_gradient("L").resize((side, side), Image.Resampling.BILINEAR)
    big = Image.merge("RGB", (ramp, ring, ramp.transpose(Image.Transpose.ROTATE_90)))
    big.save(folder / "big.jpg", quality=90, progressive=True)
    big.save(folder / "big.png", compress_level=1)
    big.save(folder / "big.webp", quality=80, method=0)
    del big
    small = Image.merge("RGB", (ramp.resize((2400, 1800)),) * 3)
    jpeg = encode(small, "JPEG", quality=90)
    (folder / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "scrambled.png").write_bytes(scramble(encode(small, "PNG"), 100))
    (folder / "scrambled.webp").write_bytes(scramble(encode(small, "WEBP"), 60))
    return folder


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def scramble(data: bytes, keep: int) -> bytes:
    """``data`` with everything after its first ``keep`` bytes replaced by a byte ramp."""
    tail = bytes(range(256)) * ((len(data) - keep) // 256 + 1)
    return data[:keep] + tail[: len(data) - keep]


def run_process(photos: Path, data_dir: Path, wrapper: list[str]) -> dict[str, dict[str, str]]:
    """``photopipe process --json`` over every file, under ``wrapper``: status and code by file."""
    names = [*GOOD, *BAD]
    env = {**os.environ, "PHOTOPIPE_DATA_DIR": str(data_dir), "PHOTOPIPE_MAX_ATTEMPTS": "1"}
    out = subprocess.run([*wrapper, sys.executable, "-m", "pipeline.cli", "process", "--json",
                          *(str(photos / name) for name in names)],
                         check=False, capture_output=True, text=True, env=env, timeout=300)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == len(names), (out.returncode, out.stderr[-2000:])
    return {Path(line["path"]).name: {"status": line["status"],
                                      "code": (line["error"] or {}).get("code", "")}
            for line in lines}


def found(results: dict[str, dict[str, str]], data_dir: Path) -> Check:
    """What the run left, for the fault report: endings, rows and objects, attempts."""
    db = SqliteMetadata(str(data_dir / "photopipe.db"))
    rows = [r for r in db.scan(Selection(), 0, 100) if r is not None]
    renditions = [k for r in rows for k in db.renditions(r.id)]
    db.close()
    objects = [p for p in (data_dir / "objects" / "photos").rglob("*") if p.is_file()]
    assert len(renditions) == len(objects)  # every row has its object, and back
    return Check(statuses=Counter(r["status"] for r in results.values()),
                 codes=Counter(r["code"] for r in results.values() if r["code"]),
                 rows=len(renditions), objects=len(objects),
                 max_attempts=max(r.attempts for r in rows),
                 renders=Counter(f"{r['status']} {r['code']}".strip()
                                 for r in results.values()))


def check(results: dict[str, dict[str, str]]) -> None:
    for name in GOOD:
        result = results[name]
        assert result["status"] == "ready" or result["code"] == "out_of_memory", (name, result)
    assert any(results[name]["code"] == "out_of_memory" for name in GOOD), \
        f"no photo met the limit, so it proved nothing: {results}"
    for name, code in BAD.items():
        assert (results[name]["status"], results[name]["code"]) == ("failed", code), name


def test_under_an_address_space_limit(photos: Path, tmp_path: Path) -> None:
    """The trial's limit: a 976 MB address space (the 100 MP WebP alone needs 1.5 GB)."""
    results = run_process(photos, tmp_path, ["prlimit", f"--as={976 * 1000 * 1000}"])
    check(results)
    assert results["big.webp"]["code"] == "out_of_memory"
    assert results["big.jpg"]["status"] == "ready"  # drafted at 1/8 scale: a few MB
    report("Address space limited", "`photopipe process` under `prlimit --as=976MB`: 100 MP "
           "JPEG, PNG and WebP, and a truncated JPEG, a scrambled PNG and WebP",
           "the decode's need, estimated from the header, is compared with what the process "
           "can still get: the WebP (1.5 GB) is `out_of_memory` before it is decoded, never "
           "`corrupt`; the bad files keep their verdicts", found(results, tmp_path))


def test_under_a_memory_cgroup(photos: Path, tmp_path: Path) -> None:
    """A cgroup does not fail allocations: over its limit, the kernel kills the process. So a
    decode that cannot fit must be refused before it starts, or nothing is recorded at all."""
    with memory_group(600 * MB) as procs:
        wrapper = ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "in-group"]
        results = run_process(photos, tmp_path, wrapper)
    check(results)
    assert results["big.webp"]["code"] == "out_of_memory"
    report("Memory cgroup of 600 MB", "`photopipe process` in a private memory cgroup (v1 "
           "here, v2 where the machine has it), the same files", "the cgroup's limit less "
           "its usage bounds the decode: the WebP is `out_of_memory` before the kernel would "
           "kill the process; the bad files keep their verdicts", found(results, tmp_path))


@contextlib.contextmanager
def memory_group(limit: int) -> Iterator[Path]:
    """A private memory cgroup with ``limit`` bytes (root only): its ``cgroup.procs``."""
    mounts = memory._mounts(memory.PROC)
    v1 = [m for m in mounts if m.version == 1]
    v2 = [m for m in mounts if m.version == 2
          and "memory" in (m.point / "cgroup.controllers").read_text().split()]
    assert v1 or v2, f"no cgroup file system with the memory controller: {mounts}"
    mount = v1[0] if v1 else v2[0]
    if mount.version == 2:  # a v2 group limits memory only where its parent hands it down
        (mount.point / "cgroup.subtree_control").write_text("+memory")
    group = mount.point / f"photopipe-test-{os.getpid()}"
    group.mkdir()
    try:
        if mount.version == 1:
            (group / "memory.limit_in_bytes").write_text(str(limit))
        else:
            (group / "memory.max").write_text(str(limit))
        yield group / "cgroup.procs"
    finally:
        group.rmdir()
