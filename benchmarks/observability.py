"""The cost of metrics and JSON logs per job, beside the same jobs with them off.

    .venv/bin/python -m benchmarks.observability [ROUNDS]

The jobs are the production path without a broker: ``pipeline.jobs.process`` on the sample
photos (memory store, SQLite), one after another in this process, with the metrics in
multiprocess mode (memory-mapped files, as under the worker's prefork pool) and JSON log lines
written to a file. Rounds alternate the two contenders photo by photo, so drift in the machine
hits both alike. Measured two ways in one run:

* directly: the CPU time of the observing itself (``running()`` and ``report()``) on each
  observed job, over that job's own CPU time;
* end to end: the CPU time per job with observing on, over the same photos' with it off
  (noisier: a job's own CPU varies by more than the cost measured).

Also per call, from many calls: ``metrics.observe`` alone, a JSON log line alone, a plain one.
Writes benchmarks/results/observability.{md,json}.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, machine, write
from pipeline.core.startup import configure
from pipeline.jobs import Job, Outcome, process
from pipeline.metadata import NewPhoto
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.observability.registry import use_directory
from pipeline.settings import Settings
from pipeline.storage.memory import MemoryStore

if __name__ == "__main__":  # before prometheus_client loads, as `photopipe worker` does
    DIRECTORY = Path(tempfile.mkdtemp(prefix="photopipe-bench-metrics-"))
    use_directory(DIRECTORY)

from pipeline.observability import logs, metrics
from pipeline.observability.report import report, running

SAMPLES = sorted((ROOT / "samples").glob("*.jpg"))
LOOKS = (None, "clarendon")


class Bench:
    """The store, database and photos the jobs run on."""

    def __init__(self, folder: Path) -> None:
        self.settings = Settings(log_format="json")
        configure(self.settings.limits)
        self.store, self.db = MemoryStore(), SqliteMetadata(str(folder / "bench.db"))
        self.next_id = 1
        for index, path in enumerate(SAMPLES):
            self.store.put(f"uploads/{index}", path.read_bytes(), "image/jpeg")

    def job(self, index: int, look: str | None) -> Job:
        self.next_id += 1
        return self.db.create(NewPhoto(self.next_id, f"uploads/{index}", "default", look, 1.0),
                              enqueue=False)

    def plain(self, job: Job) -> tuple[float, float]:
        """(job CPU, observing CPU) of one job with observing off."""
        started = time.process_time()
        process(job, self.store, self.db, self.settings)
        return time.process_time() - started, 0.0

    def observed(self, job: Job) -> tuple[float, float]:
        """(job CPU, observing CPU) of one job as the Celery task runs it."""
        started = time.process_time()
        with running():
            outcome = process(job, self.store, self.db, self.settings)
        before_report = time.process_time()
        report(outcome, 0.01)
        done = time.process_time()
        overhead = done - before_report + _enter_exit_cost()
        return done - started, overhead


def _enter_exit_cost() -> float:
    """CPU of entering and leaving running() (the gauge's inc and dec), measured apart."""
    started = time.process_time()
    for _ in range(100):
        with running():
            pass
    return (time.process_time() - started) / 100


def per_call(function: Callable[[], object], calls: int = 20_000) -> float:
    """Microseconds of CPU per call."""
    function()
    started = time.process_time()
    for _ in range(calls):
        function()
    return (time.process_time() - started) / calls * 1e6


def main(rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="photopipe-bench-observe-"))
    with (folder / "jobs.log").open("w") as log_file:
        logs.configure(Settings(log_format="json"), stream=log_file)
        bench = Bench(folder)
        runs: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
        for round_number in range(rounds):
            for index in range(len(SAMPLES)):
                for look in LOOKS:
                    order = ("off", "on") if (round_number + index) % 2 == 0 else ("on", "off")
                    for name in order:
                        run = bench.observed if name == "on" else bench.plain
                        runs[name].append(run(bench.job(index, look)))
            print(f"round {round_number + 1}/{rounds}", file=sys.stderr, flush=True)
        calls = _per_call_costs(log_file)
    result = _result(runs, calls)
    write("observability", _markdown(result), result)
    print(_markdown(result))


def _per_call_costs(log_file: Any) -> dict[str, float]:
    outcome = Outcome("ready", Job(1, 1), attempt=1)
    timings = {"fetch": .002, "decode": .05, "resize": .02, "encode": .06, "store": .01,
               "record": .002}
    written = {"jpg": 400_000, "webp": 250_000}

    def observe() -> None:
        metrics.observe("ready", None, queue_wait=0.01, timings=timings, written=written,
                        cpu=("default", None, 0.2))

    def log_line() -> None:
        logs.job(1, 1, status="ready", attempt=1, code=None, message=None, timings=timings,
                 written=written, queue_wait=0.01, cpu_seconds=0.2)

    found = {"metrics.observe (multiprocess files)": per_call(observe),
             "JSON log line": per_call(log_line)}
    logs.configure(Settings(log_format="plain"), stream=log_file)
    found["plain log line"] = per_call(log_line)
    found["report() (both, JSON)"] = found["metrics.observe (multiprocess files)"] + \
        found["JSON log line"]
    del outcome
    return found


def _result(runs: dict[str, list[tuple[float, float]]],
            calls: dict[str, float]) -> dict[str, Any]:
    off = [cpu for cpu, _ in runs["off"]]
    on = [cpu for cpu, _ in runs["on"]]
    overhead = [extra / cpu for cpu, extra in runs["on"]]
    # the same photo and look, one job after the other: the pair's difference over its job
    paired = sorted((a - b) / b for a, b in zip(on, off, strict=True))
    quartiles = statistics.quantiles(paired, n=4)
    return {
        "paired_difference": {"median": statistics.median(paired), "q1": quartiles[0],
                              "q3": quartiles[2]},
        "machine": machine(), "jobs_per_contender": len(off),
        "samples": [p.name for p in SAMPLES], "looks": [str(look) for look in LOOKS],
        "job_cpu_ms": {"off_median": statistics.median(off) * 1000,
                       "on_median": statistics.median(on) * 1000,
                       "off_mean": statistics.mean(off) * 1000,
                       "on_mean": statistics.mean(on) * 1000},
        "end_to_end_ratio": statistics.mean(on) / statistics.mean(off),
        "direct_overhead": {"median": statistics.median(overhead), "max": max(overhead),
                            "mean_us": statistics.mean(e for _, e in runs["on"]) * 1e6},
        "per_call_us": calls,
        "metrics_files": len(list(DIRECTORY.glob("*.db"))),
    }


def _markdown(result: dict[str, Any]) -> str:
    cpu, direct = result["job_cpu_ms"], result["direct_overhead"]
    pair = result["paired_difference"]
    lines = [
        "# Observability overhead: metrics and JSON logs per job", "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
        f"{result['jobs_per_contender']} jobs per contender ({', '.join(result['samples'])}, "
        f"looks {', '.join(result['looks'])}), alternated job by job, in one run; metrics in "
        "multiprocess mode, JSON lines to a file (`python -m benchmarks.observability`).", "",
        "| per job | metrics + JSON logs off | on | on / off |",
        "| --- | ---: | ---: | ---: |",
        f"| CPU, mean | {cpu['off_mean']:.1f} ms | {cpu['on_mean']:.1f} ms | "
        f"{result['end_to_end_ratio']:.4f} |",
        f"| CPU, median | {cpu['off_median']:.1f} ms | {cpu['on_median']:.1f} ms | "
        f"{cpu['on_median'] / cpu['off_median']:.4f} |",
        f"| same photo and look, job after job: (on - off) / off | | | median "
        f"{pair['median'] * 100:+.2f} % (quartiles {pair['q1'] * 100:+.2f} %, "
        f"{pair['q3'] * 100:+.2f} %) |", "",
        f"Measured directly on each observed job: the observing took {direct['mean_us']:.0f} "
        f"us of CPU, a median of {direct['median'] * 100:.3f} % of its job's CPU "
        f"(at most {direct['max'] * 100:.3f} %; target: under 1 %). The end-to-end ratio "
        "carries the jobs' own variation, which is larger than the cost measured.", "",
        "| one call | CPU |", "| --- | ---: |",
        *[f"| {name} | {us:.1f} us |" for name, us in result["per_call_us"].items()],
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.nice(0)
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
