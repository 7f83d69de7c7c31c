"""What this process can still allocate, and what decoding a picture will take.

A decoder that runs out of memory says so in ways that look like bad bytes (libwebp and libpng
report a failed allocation as an error Pillow raises as ``OSError``; under a cgroup limit the
kernel kills the process instead). A verdict on an image must be something its bytes cause on any
machine, so :mod:`pipeline.core.decode` compares a decode's need, estimated from the header,
with :func:`headroom` before it decodes, and again before it calls a decoder's failure a verdict.

The headroom is the least of what each bound leaves: the address-space limit (``RLIMIT_AS``,
``prlimit --as``, ``ulimit -v``) less the address space in use, each memory cgroup of the
process's (v2 ``memory.max``, v1 ``memory.limit_in_bytes``, its own group and every ancestor)
less its usage without reclaimable page cache, and the machine's ``MemAvailable``. Reading
them touches only this process's own entries under ``/proc`` and the cgroup file system.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROC = Path("/proc")
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1


@dataclass(frozen=True)
class Mount:
    """A cgroup file system as /proc/self/mountinfo shows it."""

    version: int  # 1 or 2
    root: str  # the group the mount shows as its top
    point: Path


def headroom(proc: Path = PROC) -> int | None:
    """Bytes this process can still allocate, by its tightest bound; None when none is known."""
    bounds = [b for b in (_address_space(proc), _available(proc), *_cgroups(proc))
              if b is not None]
    return max(0, min(bounds)) if bounds else None


def _address_space(proc: Path) -> int | None:
    """RLIMIT_AS less the address space already mapped (the first field of statm, in pages)."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    pages = int((proc / "self/statm").read_text().split()[0])
    return int(limit - pages * os.sysconf("SC_PAGE_SIZE"))


def _available(proc: Path) -> int | None:
    """The machine's MemAvailable (what the kernel can hand out without swapping)."""
    for line in _read(proc / "meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _cgroups(proc: Path) -> Iterator[int]:
    """What each memory limit over this process leaves: its groups and their ancestors."""
    mounts = _mounts(proc)
    for line in _read(proc / "self/cgroup").splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        version = 2 if hierarchy == "0" and not controllers else 1
        if version == 1 and "memory" not in controllers.split(","):
            continue
        for mount in (m for m in mounts if m.version == version):
            yield from _group_bounds(mount, path)


def _group_bounds(mount: Mount, path: str) -> Iterator[int]:
    """Limit less usage for the group at ``path`` and each ancestor the mount shows."""
    for files in _group_files(mount, path):
        bound = _group_bound(*files)
        if bound is not None:
            yield bound


@lru_cache(maxsize=16)
def _group_files(mount: Mount, path: str) -> tuple[tuple[str, str, str], ...]:
    """The limit, usage and stat files of the group at ``path`` and of each ancestor the
    mount shows, innermost first (worked out once per group: a decode reads them all)."""
    if not (path + "/").startswith(mount.root.rstrip("/") + "/"):
        return ()
    group = mount.point / path[len(mount.root.rstrip("/")):].lstrip("/")
    names = (("memory.max", "memory.current") if mount.version == 2
             else ("memory.limit_in_bytes", "memory.usage_in_bytes"))
    found = []
    while True:
        found.append((str(group / names[0]), str(group / names[1]), str(group / "memory.stat")))
        if group == mount.point:
            return tuple(found)
        group = group.parent


def _group_bound(limit_file: str, usage_file: str, stat_file: str) -> int | None:
    """One group's limit less its usage, page cache the kernel can reclaim not counted."""
    limit = _read(limit_file).strip()
    if not limit or limit == "max" or int(limit) >= UNLIMITED:
        return None
    usage = int(_read(usage_file).strip() or 0)
    return int(limit) - max(0, usage - _inactive_file(stat_file))


def _inactive_file(stat_file: str) -> int:
    """Clean page cache the group holds (reclaimed before its limit is hit)."""
    for line in _read(stat_file).splitlines():
        name, _, value = line.partition(" ")
        if name in ("inactive_file", "total_inactive_file"):
            return int(value)
    return 0


@lru_cache(maxsize=4)
def _mounts(proc: Path) -> tuple[Mount, ...]:
    """The cgroup mounts that can limit memory: every v2 one, and v1 ones with ``memory``."""
    mounts = []
    for line in _read(proc / "self/mountinfo").splitlines():
        fields, _, tail = line.partition(" - ")
        parts, kind = fields.split(), tail.split()
        if len(parts) < 5 or len(kind) < 3:
            continue
        if kind[0] == "cgroup2":
            mounts.append(Mount(2, parts[3], Path(parts[4])))
        elif kind[0] == "cgroup" and "memory" in kind[2].split(","):
            mounts.append(Mount(1, parts[3], Path(parts[4])))
    return tuple(mounts)


def _read(path: Path | str) -> str:
    """A kernel file's text, or "" where this machine has no such file. Plain system calls:
    a decode reads five or six of these files, and Python's buffered text files cost a few
    times the read itself."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)
