"""A real Prometheus server (Debian's `prometheus`) of a test's own, on a loopback port,
scraping every second, with photopipe's alert rules loaded; and its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.services import free_port, wait_for_port
from tests.workers.harness import ROOT

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "photopipe.json"


@dataclass
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=30) as reply:
            body = json.loads(reply.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` gives now."""
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        """``expr``'s single value now, or None when it gives no series."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def by(self, expr: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def wait_for(self, expr: str, want: float, seconds: float = 60) -> None:
        deadline, found = time.monotonic() + seconds, None
        while time.monotonic() < deadline:
            found = self.scalar(expr)
            if found == want:
                return
            time.sleep(0.5)
        raise AssertionError(f"{expr} is {found}, not {want}, after {seconds} s")


@contextmanager
def prometheus(folder: Path, targets: list[int]) -> Iterator[Prometheus]:
    """Prometheus scraping ``127.0.0.1:<port>`` for each of ``targets`` every second."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is not installed: scripts/services-up installs it"
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                         "scrape_timeout": "900ms"},
              "rule_files": [str(RULES)],
              "scrape_configs": [{"job_name": "photopipe", "static_configs": [
                  {"targets": [f"127.0.0.1:{t}" for t in targets]}]}]}
    (folder / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    with (folder / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--web.enable-admin-api"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 60)
        server = Prometheus(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
