"""photopipe end to end, side by side with the alternatives, in one run.

    make bench        (or: python -m benchmarks.pipeline [--runs N])

Each contender runs in a process of its own pinned to one core (the peers in their own venv, with
stock Pillow); two photopipe processes then run on two cores; finally the same photos go through
`photopipe submit`, RabbitMQ, two `photopipe worker` processes, PostgreSQL and S3 (moto's server)
on loopback. Writes benchmarks/results/pipeline.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import queue_run
from benchmarks.common import PEERS_PYTHON, ROOT, machine, write
from benchmarks.report import chart, markdown
from benchmarks.workload import corpus, phone_photo, sha256

SINGLE_THREAD = {"VIPS_CONCURRENCY": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def run(python: Path, args: list[str], core: int) -> subprocess.Popen[str]:
    """Start a contender pinned to ``core``."""
    process = subprocess.Popen([str(python), *args], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, env={**os.environ, **SINGLE_THREAD})
    os.sched_setaffinity(process.pid, {core})  # before it has finished importing anything
    return process


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=3600)
    if process.returncode:
        raise RuntimeError(f"{process.args!r} failed with {process.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


def rates(result: dict[str, Any]) -> dict[str, float]:
    per_run = [r["images"] / r["seconds"] for r in result["runs"]]
    return {"median_images_per_s": statistics.median(per_run), "best_images_per_s": max(per_run),
            "cpu_ms_per_image": statistics.median(1000 * r["cpu_seconds"] / r["images"]
                                                  for r in result["runs"]),
            "peak_rss_mb": result["peak_rss_mb"]}


def contenders(paths: list[str], runs: int) -> dict[str, Any]:
    """Every contender, one run at a time in turn (photopipe, pyvips, naive, photopipe, ...),
    so that a machine that slows down or speeds up affects them all alike."""
    project = Path(sys.executable)
    commands = {
        "photopipe": (project, ["-m", "benchmarks.inprocess", "photopipe", "1", *paths]),
        "pyvips": (PEERS_PYTHON, ["benchmarks/peers/contenders.py", "pyvips", "1", *paths]),
        "naive": (PEERS_PYTHON, ["benchmarks/peers/contenders.py", "naive", "1", *paths]),
    }
    merged: dict[str, dict[str, Any]] = {n: {"runs": [], "peak_rss_mb": 0.0} for n in commands}
    floor: list[float] = []
    for _ in range(runs):
        for name, (python, args) in commands.items():
            result = finish(run(python, args, core=0))
            merged[name]["runs"] += result["runs"]
            merged[name]["peak_rss_mb"] = max(merged[name]["peak_rss_mb"], result["peak_rss_mb"])
            merged[name]["versions"] = result.get("versions", {})
            floor += result.get("floor_cpu_seconds", [])
    out: dict[str, Any] = {n: {**rates(r), "versions": r["versions"]} for n, r in merged.items()}
    out["floor_cpu_ms_per_image"] = 1000 * statistics.median(floor)
    for mode in ("floor", "stages"):
        out[mode] = finish(run(project, ["-m", "benchmarks.inprocess", mode, str(runs), *paths],
                               core=0))
    return out


def two_cores(paths: list[str], runs: int) -> dict[str, float]:
    args = ["-m", "benchmarks.inprocess", "photopipe", str(runs), *paths]
    processes = [run(Path(sys.executable), args, core=c) for c in (0, 1)]
    results = [rates(finish(p)) for p in processes]
    return {"images_per_s": sum(r["median_images_per_s"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--queue-photos", type=int, default=40)
    args = parser.parse_args()
    if not PEERS_PYTHON.exists():
        raise SystemExit("the peers' venv is missing: run `make bench-peers` first")
    data = phone_photo()
    with tempfile.TemporaryDirectory() as folder:
        upload = Path(folder) / "phone.jpg"
        upload.write_bytes(data)
        synthetic = [str(upload)] * 3  # one run renders the upload three times
        real = [str(p) for p in corpus()]
        results: dict[str, Any] = {
            "workload": {"size": "4032x3024 JPEG q92 4:2:0, EXIF orientation 6 + GPS",
                         "sha256": sha256(data), "bytes": len(data), "corpus_files": len(real)},
            "machine": machine(), "runs": args.runs,
            "single_core": contenders(synthetic, args.runs),
        }
        if real:
            results["corpus"] = contenders(real, max(3, args.runs // 2))
        results["two_cores"] = two_cores(synthetic, args.runs)
        results["queue"] = queue_run.measure(upload, args.queue_photos)
    text = markdown(results)
    write("pipeline", text, results)
    chart(results, ROOT / "benchmarks" / "results" / "pipeline.png")
    print(text)


if __name__ == "__main__":
    main()
