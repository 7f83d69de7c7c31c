"""What the process can still allocate (every bound read from the kernel's own files), what a
decode needs, and the decode edge telling memory apart from bad bytes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pipeline import errors
from pipeline.core import memory
from pipeline.core.decode import MEMORY_DOUBT, decode, decode_need
from pipeline.settings import Limits

MB = 1 << 20


def fake_proc(root: Path, cgroup: str, mountinfo: list[str], available_kb: int) -> Path:
    """A /proc with the files headroom() reads (no RLIMIT_AS: that one is the process's)."""
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self/cgroup").write_text(cgroup)
    (proc / "self/mountinfo").write_text("".join(line + "\n" for line in mountinfo))
    (proc / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {available_kb} kB\n")
    memory._mounts.cache_clear()
    return proc


def group(path: Path, files: dict[str, str]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)


def v2_mount(point: Path, root: str = "/") -> str:
    return f"30 25 0:26 {root} {point} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"


def v1_mount(point: Path, root: str = "/", options: str = "rw,memory") -> str:
    return f"40 25 0:35 {root} {point} rw,nosuid - cgroup cgroup {options}"


def test_cgroup_v2_limit_less_usage_without_reclaimable_cache(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    proc = fake_proc(tmp_path, "0::/app/worker\n", [v2_mount(cg)], available_kb=8 * 1024 * 1024)
    group(cg / "app/worker", {"memory.max": f"{600 * MB}\n", "memory.current": f"{250 * MB}\n",
                              "memory.stat": f"anon 1\ninactive_file {50 * MB}\nactive_file 9\n"})
    group(cg / "app", {"memory.max": "max\n", "memory.current": f"{900 * MB}\n"})
    assert memory.headroom(proc) == 600 * MB - (250 - 50) * MB


def test_an_ancestor_group_with_less_left_wins(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    proc = fake_proc(tmp_path, "0::/app/worker\n", [v2_mount(cg)], available_kb=8 * 1024 * 1024)
    group(cg / "app/worker", {"memory.max": f"{600 * MB}\n", "memory.current": f"{100 * MB}\n"})
    group(cg / "app", {"memory.max": f"{700 * MB}\n", "memory.current": f"{650 * MB}\n"})
    assert memory.headroom(proc) == 50 * MB


def test_cgroup_v1_memory_hierarchy_under_a_namespaced_root(tmp_path: Path) -> None:
    """A v1 mount may show a group as its top: the process's path is read relative to it; v1's
    "no limit" (a page-rounded 2**63 - 1) is no bound, and other controllers are ignored."""
    mem, cpu = tmp_path / "memory", tmp_path / "cpu"
    proc = fake_proc(tmp_path, "5:cpu,cpuacct:/pod/box\n4:memory:/pod/box\n0::/\n",
                     [v1_mount(mem, root="/pod"), v1_mount(cpu, "/pod", "rw,cpu,cpuacct")],
                     available_kb=8 * 1024 * 1024)
    group(mem / "box", {"memory.limit_in_bytes": f"{400 * MB}\n",
                        "memory.usage_in_bytes": f"{300 * MB}\n",
                        "memory.stat": f"cache 1\ntotal_inactive_file {20 * MB}\n"})
    group(mem, {"memory.limit_in_bytes": "9223372036854771712\n",
                "memory.usage_in_bytes": f"{5000 * MB}\n"})
    group(cpu / "box", {"memory.limit_in_bytes": f"{1 * MB}\n", "memory.usage_in_bytes": "0\n"})
    assert memory.headroom(proc) == 400 * MB - 280 * MB


def test_without_limits_the_machine_available_memory_bounds(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    proc = fake_proc(tmp_path, "0::/\n", [v2_mount(cg)], available_kb=3 * 1024 * 1024)
    group(cg, {"memory.max": "max\n", "memory.current": f"{100 * MB}\n"})
    assert memory.headroom(proc) == 3 * 1024 * MB


def test_address_space_limit_counts_what_is_already_mapped() -> None:
    """Under ``prlimit --as`` the headroom is the limit less the process's mapped size."""
    limit = 900 * MB
    code = ("import os, resource; from pipeline.core import memory; import numpy, PIL.Image\n"
            "pages = int(open('/proc/self/statm').read().split()[0])\n"
            "print(memory._address_space(memory.PROC), pages * os.sysconf('SC_PAGE_SIZE'))")
    out = subprocess.run(["prlimit", f"--as={limit}", sys.executable, "-c", code],
                         capture_output=True, text=True, check=True, timeout=60)
    left, mapped = map(int, out.stdout.split())
    assert mapped > 50 * MB  # an interpreter with numpy maps that much at least
    assert abs(left - (limit - mapped)) < 4 * MB
    assert memory.headroom() is not None and memory._address_space(memory.PROC) is None


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize(("image", "fmt", "options", "expected"), [
    (Image.new("RGB", (100, 50)), "JPEG", {}, 100 * 50 * 4),
    (Image.new("RGB", (100, 50)), "JPEG", {"progressive": True}, 100 * 50 * (4 + 3 * 2)),
    (Image.new("L", (100, 50)), "JPEG", {"progressive": True}, 100 * 50 * (1 + 4 + 1 * 2)),
    (Image.new("RGB", (30, 20)), "PNG", {}, 30 * 20 * 4),
    (Image.new("RGBA", (30, 20)), "PNG", {}, 30 * 20 * (4 + 3 * 4)),
    (Image.new("L", (30, 20)), "PNG", {}, 30 * 20 * (1 + 4)),
    (Image.new("RGB", (30, 20)), "WEBP", {}, 30 * 20 * (4 + 3 * 4)),
])
def test_decode_need(image: Image.Image, fmt: str, options: dict[str, object],
                     expected: int) -> None:
    picture = opened(encoded(image, fmt, **options))
    assert decode_need(picture, picture.size) == expected


def test_a_drafted_jpeg_needs_its_scaled_pixels_and_its_full_coefficients() -> None:
    picture = opened(encoded(Image.new("RGB", (800, 400)), "JPEG", progressive=True))
    picture.draft("RGB", (100, 50))
    assert picture.size == (100, 50)
    assert decode_need(picture, (800, 400)) == 100 * 50 * 4 + 800 * 400 * 3 * 2


def webp(size: tuple[int, int] = (64, 48)) -> bytes:
    return encoded(Image.new("RGB", size, (10, 200, 30)), "WEBP", quality=80)


def need_of(data: bytes) -> int:
    picture = opened(data)
    return decode_need(picture, picture.size)


def test_a_decode_that_cannot_fit_is_not_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    data = webp()
    monkeypatch.setattr(memory, "headroom", lambda: need_of(data) - 1)
    with pytest.raises(errors.OutOfMemory, match="was not tried"):
        decode(data, Limits())
    monkeypatch.setattr(memory, "headroom", lambda: need_of(data))
    assert decode(data, Limits()).image.size == (64, 48)


def corrupt_webp() -> bytes:
    """A WebP whose header reads well and whose VP8 bitstream is garbage."""
    data = bytearray(webp((640, 480)))
    data[60:] = bytes(range(256)) * ((len(data) - 60) // 256) + bytes((len(data) - 60) % 256)
    return bytes(data)


@pytest.mark.parametrize(("left", "expected"), [
    (lambda need: need * MEMORY_DOUBT - 1, errors.OutOfMemory),
    (lambda need: need * MEMORY_DOUBT, errors.Corrupt),
    (lambda need: None, errors.Corrupt),
])
def test_a_decoder_failure_is_memory_s_only_when_memory_explains_it(
        monkeypatch: pytest.MonkeyPatch, left: object, expected: type[Exception]) -> None:
    data = corrupt_webp()
    need = need_of(data)
    monkeypatch.setattr(memory, "headroom", lambda: left(need))  # type: ignore[operator]
    with pytest.raises(expected) as caught:
        decode(data, Limits())
    if expected is errors.OutOfMemory:
        assert "failed" in str(caught.value) and isinstance(caught.value.__cause__, OSError)


def test_the_kernel_files_are_read_where_the_kernel_keeps_them() -> None:
    """The real /proc: this test machine's bounds are read, not a default."""
    assert Path("/proc") == memory.PROC and (memory.PROC / "self/mountinfo").exists()
    left = memory.headroom()
    assert left is not None and 0 < left <= os.sysconf("SC_PAGE_SIZE") * os.sysconf(
        "SC_PHYS_PAGES")
