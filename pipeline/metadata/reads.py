"""Reads a standby may serve: how fresh a standby must be to serve one, and who is told which
role answered each (the metrics; this port imports no metrics library).

A standby serves a read when, at the start of the read's own transaction:

* its data is at most ``max_lag`` seconds behind what it has received: it has replayed all it
  received, or the last commit it replayed is at most ``max_lag`` seconds old. A synchronous
  standby has received every commit the primary acknowledged, so this bounds the read's
  staleness. (Counted conservatively: after an idle spell, the first write arriving makes
  the last replayed commit look old, and reads go to the primary until it is replayed.)
* given ``after``, a primary's WAL position, it has replayed past it: the read sees every
  write committed before that position was taken (read-your-writes).

Otherwise the read runs on the primary.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Role = Literal["primary", "standby"]
_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
_observers: list[Callable[[Role], None]] = []


@dataclass(frozen=True)
class Freshness:
    """How fresh a standby must be to serve a read."""

    max_lag: float
    after: str | None = None

    def __post_init__(self) -> None:
        if self.after is not None and not _LSN.match(self.after):
            raise ValueError(f"not a WAL position: {self.after!r}")

    def check(self) -> str:
        """A statement run first in a read's transaction: whether this server is a standby,
        and whether it is fresh enough (always, on a primary)."""
        behind = ("CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
                  "ELSE extract(epoch FROM clock_timestamp() - "
                  "pg_last_xact_replay_timestamp()) END")
        past = "true" if self.after is None else \
            f"pg_last_wal_replay_lsn() >= '{self.after}'::pg_lsn"
        return (f"SELECT pg_is_in_recovery() AS standby, NOT pg_is_in_recovery() OR "
                f"(coalesce({behind} <= {float(self.max_lag)!r}, false) AND {past}) AS fresh")


def valid(position: str) -> bool:
    """Whether ``position`` is a WAL position as PostgreSQL writes it (``16/B374D848``)."""
    return bool(_LSN.match(position))


def observe(callback: Callable[[Role], None]) -> Callable[[], None]:
    """Tell ``callback`` the role of the server that answered each read a standby could have
    served (a metrics counter). Returns what stops it."""
    _observers.append(callback)
    return lambda: _observers.remove(callback)


def answered(role: Role) -> None:
    for callback in _observers:
        callback(role)
