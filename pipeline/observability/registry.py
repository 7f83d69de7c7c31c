"""Where the worker's processes keep their metrics, and the registry that sums them.

Nothing here imports prometheus_client at module level: :func:`use_directory` must run before
the client's first import, which decides the mode of every metric in the process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_directory(path: Path) -> None:
    """Make this process, and every process it forks, count into ``path`` (multiprocess
    mode). Must run before prometheus_client is first imported.

    The directory is kept across restarts of the worker: counters of processes that are gone
    stay summed in, so totals only grow; the live gauges of dead processes are removed.

    Raises:
        RuntimeError: prometheus_client was already imported in single-process mode.
    """
    if "prometheus_client" in sys.modules and os.environ.get(ENV) != str(path):
        raise RuntimeError("prometheus_client was imported before its multiprocess "
                           "directory was set")
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(path)
    sweep(path)


def sweep(path: Path) -> None:
    """Forget the live gauges (jobs in progress) of processes that no longer exist."""
    from prometheus_client import multiprocess

    for pid in _pids(path.glob("gauge_live*_*.db")):
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def registry(path: Path) -> CollectorRegistry:
    """A registry that sums every process's files in ``path`` at each scrape, having first
    forgotten the live gauges of processes that are gone."""
    from prometheus_client import CollectorRegistry

    summed = CollectorRegistry()
    summed.register(_Swept(path))
    return summed


class _Swept:
    def __init__(self, path: Path) -> None:
        from prometheus_client import multiprocess

        self.path = path
        self.inner = multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            None, str(path))

    def collect(self) -> Iterator[Metric]:
        sweep(self.path)
        yield from self.inner.collect()  # type: ignore[no-untyped-call]


def _pids(files: Iterable[Path]) -> set[int]:
    pids = set()
    for file in files:
        tail = file.stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            pids.add(int(tail))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
