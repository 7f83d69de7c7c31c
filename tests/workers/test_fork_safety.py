"""The worker forks its pool processes from a process with threads (the metrics server, the
readiness probes, the relay, the sweep). A fork taken while a thread imports a module copies
that module's import lock, held by a thread the child does not have: the child's first import
of it waits forever. Seen here: a pool process hung in open_store's lazy import of the S3
store while the probes imported it. So everything the pool imports lazily is imported before
the first thread starts; this test stops the worker there and looks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.faults.harness import deploy
from tests.services import S3Server
from tests.workers.harness import ROOT

PROBE = textwrap.dedent("""
    import argparse, json, sys, threading
    from pipeline.cli import observe, service
    from pipeline.settings import Settings

    def first_thread(*args, **kwargs):
        print(json.dumps({
            "threads": sorted(t.name for t in threading.enumerate()),
            "store": "pipeline.storage.s3" in sys.modules,
            "database": "pipeline.metadata.shards.store" in sys.modules,
            "broker": any(m.startswith("kombu.transport.pyamqp") for m in sys.modules),
            "client": "botocore.client" in sys.modules}))
        raise SystemExit(0)

    observe.serve_metrics = first_thread  # the first thread the worker starts
    service.run_worker(argparse.Namespace(concurrency=1, metrics_port=9, metrics_host="x"),
                       Settings.from_env())
""")


def test_what_the_pool_imports_is_imported_before_the_first_thread(
        amqp_url: str, postgres_url: str, moto: S3Server, tmp_path: Path) -> None:
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto,
                        PHOTOPIPE_METRICS_DIR=str(tmp_path / "metrics"))
    try:
        out = subprocess.run([sys.executable, "-c", PROBE], env=deployment.env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120, check=False)
    finally:
        deployment.db.close()
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"threads": ["MainThread"], "store": True, "database": True,
                    "broker": True, "client": True}, out.stderr[-2000:]
