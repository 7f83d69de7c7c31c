"""Readiness: is each dependency reachable now, asked with a deadline.

A :class:`Checker` runs each probe on a thread of its own (so a store whose connection belongs
to one thread, like SQLite's, is only ever used there) and waits for it at most ``timeout``
seconds: a dependency that hangs reads as down within seconds, not after its client's own
retries. A probe still hanging is not asked again until it returns, so a dead dependency
cannot pile up threads. Results are reused for ``max_age`` seconds, so a scrape every second
and a readiness probe beside it cost one round of checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Probe:
    """One dependency's check: returns what it read (a queue depth, a backlog) or raises."""

    name: str
    check: Callable[[], Any]


@dataclass(frozen=True)
class Result:
    """How a probe answered."""

    name: str
    ok: bool
    seconds: float
    error: str | None = None
    value: Any = None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": round(self.seconds, 4), "error": self.error}


@dataclass(frozen=True)
class Health:
    """Every probe's result; ready when all are ok."""

    results: tuple[Result, ...]

    @property
    def ready(self) -> bool:
        return all(r.ok for r in self.results)

    def get(self, name: str) -> Result | None:
        return next((r for r in self.results if r.name == name), None)

    def as_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "checks": {r.name: r.as_json() for r in self.results}}


class Checker:
    """Runs the probes with a deadline; see the module's docstring."""

    def __init__(self, probes: list[Probe], *, timeout: float = 3.0,
                 max_age: float = 1.0) -> None:
        self.probes, self.timeout, self.max_age = probes, timeout, max_age
        self._threads = {p.name: ThreadPoolExecutor(1, thread_name_prefix=f"probe-{p.name}")
                         for p in probes}
        self._pending: dict[str, tuple[float, Future[Any]]] = {}
        self._last: tuple[float, Health] | None = None
        self._lock = threading.Lock()

    def check(self) -> Health:
        """Every probe's answer, at most ``max_age`` seconds old."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.max_age:
                return self._last[1]
            for probe in self.probes:
                if probe.name not in self._pending:
                    future = self._threads[probe.name].submit(probe.check)
                    self._pending[probe.name] = (time.monotonic(), future)
            health = Health(tuple(self._wait(p.name) for p in self.probes))
            self._last = (time.monotonic(), health)
            return health

    def _wait(self, name: str) -> Result:
        started, future = self._pending[name]
        wait([future], timeout=max(0.0, started + self.timeout - time.monotonic()))
        seconds = time.monotonic() - started
        if not future.done():
            return Result(name, False, seconds, f"no answer after {seconds:.1f} s")
        del self._pending[name]
        error = future.exception()
        if error is not None:  # a probe's failure is the dependency's status, not ours
            return Result(name, False, seconds, f"{type(error).__name__}: {error}")
        return Result(name, True, seconds, value=future.result())

    def close(self) -> None:
        for pool in self._threads.values():
            pool.shutdown(wait=False, cancel_futures=True)
