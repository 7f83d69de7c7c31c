"""The job metrics: what each ending counts, bounded labels, and the sums over processes
(prefork) that survive a pool process killed mid-job."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from pipeline.errors import ENDING_CODES
from pipeline.jobs import Job, Measures, Outcome
from pipeline.observability import metrics
from pipeline.observability.report import report, running
from tests.workers.harness import ROOT


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _outcome(status: str, code: str | None = None, **measures: object) -> Outcome:
    return Outcome(status, Job(1, 1), code, "why", 1,  # type: ignore[arg-type]
                   measures=Measures(**measures))  # type: ignore[arg-type]


def test_each_ending_counts_where_an_operator_looks_for_it() -> None:
    ready = _value("photopipe_photos_finished_total", status="ready", code="")
    corrupt = _value("photopipe_photos_finished_total", status="failed", code="corrupt")
    retried = _value("photopipe_retries_total", reason="unavailable")
    skipped = _value("photopipe_jobs_total", outcome="skipped")
    report(_outcome("ready"), 0.5)
    report(_outcome("failed", "corrupt"), None)
    report(_outcome("retry", "unavailable"), None)
    report(_outcome("skipped", "done"), None)
    assert _value("photopipe_photos_finished_total", status="ready", code="") == ready + 1
    assert _value("photopipe_photos_finished_total", status="failed",
                  code="corrupt") == corrupt + 1
    assert _value("photopipe_retries_total", reason="unavailable") == retried + 1
    assert _value("photopipe_jobs_total", outcome="skipped") == skipped + 1
    # a retry or a skip has not finished the photo
    assert _value("photopipe_photos_finished_total", status="retry",
                  code="unavailable") == 0


def test_stages_bytes_wait_and_cpu_are_observed_once_each() -> None:
    before = {s: _value(f"photopipe_stage_{s}_seconds_count") for s in metrics.STAGES}
    wait_sum = _value("photopipe_queue_wait_seconds_sum")
    jpg = _value("photopipe_rendition_bytes_total", format="jpg")
    cpu = _value("photopipe_render_cpu_seconds_count", ladder="classic", look="none")
    report(_outcome("ready", timings={"fetch": 0.01, "decode": 0.02, "resize": 0.03},
                    written={"jpg": 1000, "webp": 600}, cpu_seconds=0.2, ladder="classic"),
           2.5)
    after = {s: _value(f"photopipe_stage_{s}_seconds_count") for s in metrics.STAGES}
    assert {s for s in after if after[s] != before[s]} == {"fetch", "decode", "resize"}
    assert all(after[s] - before[s] == 1 for s in ("fetch", "decode", "resize"))
    assert _value("photopipe_stage_decode_seconds_bucket", le="0.025") >= 1
    assert _value("photopipe_queue_wait_seconds_sum") == pytest.approx(wait_sum + 2.5)
    assert _value("photopipe_rendition_bytes_total", format="jpg") == jpg + 1000
    assert _value("photopipe_render_cpu_seconds_count", ladder="classic",
                  look="none") == cpu + 1


def test_cpu_is_observed_only_for_a_photo_rendered() -> None:
    total = sum(s.value for m in REGISTRY.collect() if m.name == "photopipe_render_cpu_seconds"
                for s in m.samples if s.name.endswith("_count"))
    report(_outcome("failed", "truncated", cpu_seconds=0.1, ladder="default"), None)
    report(_outcome("superseded", cpu_seconds=0.1, ladder="default"), None)
    assert total == sum(s.value for m in REGISTRY.collect()
                        if m.name == "photopipe_render_cpu_seconds"
                        for s in m.samples if s.name.endswith("_count"))


def test_jobs_in_progress_counts_the_block() -> None:
    start = _value("photopipe_jobs_in_progress")
    with running():
        assert _value("photopipe_jobs_in_progress") == start + 1
    assert _value("photopipe_jobs_in_progress") == start


def test_labels_stay_bounded() -> None:
    assert metrics.label(None) == ""
    assert {metrics.label(code) for code in ENDING_CODES} == set(ENDING_CODES)
    for code in ("corrupt", "truncated", "too_many_pixels", "unavailable",
                 "timeout", "worker_lost", "superseded", "done", "no_such_photo"):
        assert metrics.label(code) == code
    assert metrics.label("photo 123 exploded") == "other"


PROCESSES = textwrap.dedent("""
    import json, os, signal, sys, time
    from pathlib import Path
    from pipeline.observability.registry import registry, use_directory
    directory = Path(sys.argv[1])
    use_directory(directory)
    from pipeline.observability import metrics

    def child(done, hang):
        pid = os.fork()
        if pid:
            return pid
        for _ in range(done):
            metrics.observe("ready", None, queue_wait=0.1, timings={"decode": 0.01},
                            written={"jpg": 10}, cpu=("default", None, 0.2))
        if hang:
            metrics.IN_PROGRESS.inc()
            time.sleep(60)
        os._exit(0)

    def totals():
        found = {}
        for family in registry(directory).collect():
            for sample in family.samples:
                if sample.name in ("photopipe_photos_finished_total",
                                   "photopipe_jobs_in_progress",
                                   "photopipe_stage_decode_seconds_count"):
                    found[sample.name] = found.get(sample.name, 0) + sample.value
        return found

    killed = child(3, hang=True)
    os.waitpid(child(2, hang=False), 0)
    deadline = time.time() + 30
    while totals().get("photopipe_photos_finished_total", 0) < 5 and time.time() < deadline:
        time.sleep(0.05)
    before = totals()
    os.kill(killed, signal.SIGKILL)
    os.waitpid(killed, 0)
    after_kill = totals()
    os.waitpid(child(1, hang=False), 0)  # the pool's replacement process
    print(json.dumps({"before": before, "after_kill": after_kill, "after": totals()}))
""")


def test_a_pool_process_killed_mid_job_keeps_its_counts_and_drops_its_gauge(
        tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROCESSES, str(tmp_path / "metrics")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    found = json.loads(out.stdout)
    assert found["before"] == {"photopipe_photos_finished_total": 5,
                               "photopipe_jobs_in_progress": 1,
                               "photopipe_stage_decode_seconds_count": 5}
    assert found["after_kill"] == {**found["before"], "photopipe_jobs_in_progress": 0}
    assert found["after"] == {"photopipe_photos_finished_total": 6,
                              "photopipe_jobs_in_progress": 0,
                              "photopipe_stage_decode_seconds_count": 6}


def test_the_directory_must_be_chosen_before_the_client_loads(tmp_path: Path) -> None:
    script = ("import prometheus_client, sys\n"
              "from pathlib import Path\n"
              "from pipeline.observability.registry import use_directory\n"
              "try:\n    use_directory(Path(sys.argv[1]))\n"
              "except RuntimeError as exc:\n    print('refused:', exc)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.startswith("refused: prometheus_client was imported before")
