"""The benchmarks charge every process's CPU to a role from /proc: each process once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.workers.harness import ROOT

# Run as ``python -c PROBE -m benchmarks``: its command line names the benchmarks, as a
# benchmark's does, so /proc's entries for it are charged to the "benchmark" role.
PROBE = textwrap.dedent("""
    import json, os, time
    from benchmarks.queue_run import cpu_by_role

    tick = os.sysconf("SC_CLK_TCK")
    before, clock = cpu_by_role(), time.process_time()
    while time.process_time() - clock < 0.5:
        sum(range(1000))
    charged = (cpu_by_role() - before)["benchmark"] / tick
    print(json.dumps({"charged": charged, "spent": time.process_time() - clock,
                      "tick": 1 / tick}))
""")


def test_a_benchmark_process_is_charged_once() -> None:
    """/proc lists ``self`` and ``thread-self`` beside the numbered processes: counting them
    too charged the submitting web tier two or three times its CPU."""
    out = subprocess.run([sys.executable, "-c", PROBE, "-m", "benchmarks"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(out.stdout)
    assert abs(seen["charged"] - seen["spent"]) <= 0.1 * seen["spent"] + 3 * seen["tick"], seen
