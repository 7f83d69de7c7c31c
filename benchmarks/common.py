"""What every benchmark needs: timing, the machine's description, and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"


def timed(function: Callable[[], object], repeats: int) -> list[float]:
    """Seconds per call, ``repeats`` times, after one warm-up call."""
    function()
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return runs


def in_threads(worker: Callable[[int], int], threads: int) -> tuple[int, float]:
    """Run ``worker(index)`` on ``threads`` threads at once; the sum of what they return (how
    many things each did) and the seconds from the first start to the last end."""
    done: list[int] = []

    def run(index: int) -> None:
        done.append(worker(index))

    started = time.perf_counter()
    running = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return sum(done), time.perf_counter() - started


def summary(runs: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(runs) * 1000, "best_ms": min(runs) * 1000}


def cpu_seconds(pid: int) -> float:
    """Process ``pid``'s own CPU (user and system) so far, from the kernel's accounting."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM): unlike ru_maxrss it starts afresh at exec, so
    a parent's peak never shows up in the child's figure."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def process_group_peak_rss_mb(pgid: int) -> float:
    """The largest VmHWM among the live processes of a process group (a worker and its pool)."""
    peak = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
        peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def machine() -> dict[str, Any]:
    """The machine and library versions, recorded beside every result."""
    cpu, flags = "unknown", []
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                   if line.startswith("model name"))
        line = next(line for line in info.splitlines() if line.startswith("flags"))
        flags = sorted(set(line.split(":", 1)[1].split()) & {"sse4_2", "avx", "avx2", "avx512f",
                                                             "avx512bw", "fma"})
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cpu_flags": flags, "cores": _cores(), "python": platform.python_version(),
            "numpy": np.__version__, "pil": PIL.__version__, "platform": platform.platform()}


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def run_peer(script: str, *args: str) -> dict[str, Any]:
    """Run a peer script in the peers' venv and return its JSON output."""
    if not PEERS_PYTHON.exists():
        raise SystemExit("the peers' venv is missing: run `make bench-peers` first")
    out = subprocess.run([str(PEERS_PYTHON), str(ROOT / "benchmarks" / "peers" / script), *args],
                         check=True, capture_output=True, text=True, timeout=3600).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def write(name: str, markdown: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
