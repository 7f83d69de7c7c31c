"""Starlette or FastAPI for `photopipe serve`, measured (`python -m benchmarks.frameworks`).

The same route served by each, side by side in one run: `GET /v1/photos/{id}`, the request
clients make most (they poll it until the photo is ready): a ticket verified, the row and its
renditions read (SQLite, the embedded default), the document built, JSON written.

* Starlette: photopipe's own app (`pipeline.web.app.create_app`), middleware and all.
* FastAPI: the fastest honest FastAPI version of the same route: the path parameter and the
  `Authorization` header taken by FastAPI's dependency injection, the same door and document,
  returned as a `JSONResponse` (a `response_model` would add pydantic's validation to it), with
  the same CORS middleware.

Each is served by uvicorn in one process and driven by wrk (16 connections, one thread) for
10 s after a 2 s warm-up; the two take turns three times and each keeps its best run (other
processes on a shared machine only ever slow a run down). The CPU per request is the server
process's own, from the kernel's accounting.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import cpu_seconds, machine, write
from tests.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
ROUNDS, SECONDS, CONNECTIONS = 3, 10, 16


def prepare(folder: Path) -> tuple[dict[str, str], str, str]:
    """An embedded deployment in ``folder`` with one ready photo of user 7: its environment,
    the photo's path and a ticket."""
    from pipeline.metadata import open_metadata
    from pipeline.producer import InProcess, Upload, submit
    from pipeline.settings import Settings
    from pipeline.storage import open_store
    from pipeline.web import tickets
    from tests.workers.harness import photo

    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOPIPE_")}
    env["PHOTOPIPE_DATA_DIR"] = str(folder)
    settings = Settings.from_env(env)
    store, db = open_store(settings), open_metadata(settings)
    photo_id = submit(Upload(7, photo(1), ladder="classic"), store, db,
                      InProcess(store, db, settings), settings)
    db.close()
    return env, f"/v1/photos/{photo_id}", tickets.issue(7, ttl=3600, settings=settings)


def run(kind: str, env: dict[str, str], path: str, token: str) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"benchmarks.framework_apps:{kind}", "--factory",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 60)
        url = f"http://127.0.0.1:{port}{path}"
        _wrk(url, token, 2)
        before = cpu_seconds(server.pid)
        out = _wrk(url, token, SECONDS)
        cpu = cpu_seconds(server.pid) - before
    finally:
        server.terminate()
        server.wait(timeout=30)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"per_s": requests / SECONDS, "cpu_us": 1e6 * cpu / requests,
            "p50_ms": _latency(out, "50%"), "p99_ms": _latency(out, "99%")}


def _wrk(url: str, token: str, seconds: int) -> str:
    out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
                          "-H", f"Authorization: Bearer {token}", url],
                         capture_output=True, text=True, check=True, timeout=seconds + 60)
    if "Non-2xx" in out.stdout:
        raise RuntimeError(f"the route refused requests:\n{out.stdout}")
    return out.stdout


def _latency(out: str, share: str) -> float:
    value, unit = re.search(rf"{share}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def ensure_wrk() -> None:
    """wrk, from Debian's packages, installed when missing."""
    if shutil.which("wrk"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def measure() -> dict[str, Any]:
    ensure_wrk()
    with tempfile.TemporaryDirectory() as folder:
        env, path, token = prepare(Path(folder))
        runs: dict[str, list[dict[str, float]]] = {"starlette": [], "fastapi": []}
        for _ in range(ROUNDS):
            for kind, found in runs.items():
                found.append(run(kind, env, path, token))
                time.sleep(1)
    best = {kind: max(found, key=lambda r: r["per_s"]) for kind, found in runs.items()}
    return {"best": best, "runs": runs, "machine": machine(), **_versions()}


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("starlette", "fastapi", "uvicorn")}


def table(data: dict[str, Any]) -> str:
    star, fast = data["best"]["starlette"], data["best"]["fastapi"]
    lines = ["# Starlette or FastAPI for `photopipe serve`", "",
             f"`GET /v1/photos/{{id}}` (a ticket verified, the row read from SQLite, the "
             f"document as JSON) served by uvicorn in one process, wrk with {CONNECTIONS} "
             f"connections for {SECONDS} s, best of {ROUNDS} alternating runs each "
             f"(Starlette {data['starlette']}, FastAPI {data['fastapi']}, uvicorn "
             f"{data['uvicorn']}).", "",
             "| | Starlette | FastAPI | Starlette / FastAPI |", "| --- | ---: | ---: | ---: |",
             f"| requests per second | {star['per_s']:.0f} | {fast['per_s']:.0f} | "
             f"{star['per_s'] / fast['per_s']:.2f}x |",
             f"| server CPU per request, µs | {star['cpu_us']:.0f} | {fast['cpu_us']:.0f} | "
             f"{star['cpu_us'] / fast['cpu_us']:.2f}x |",
             f"| latency p50, ms | {star['p50_ms']:.2f} | {fast['p50_ms']:.2f} | |",
             f"| latency p99, ms | {star['p99_ms']:.2f} | {fast['p99_ms']:.2f} | |",
             "", f"Machine: {data['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    data = measure()
    write("frameworks", table(data), data)
    print(table(data))


if __name__ == "__main__":
    main()
