"""The freshness a standby must have to serve a read: a position is checked before it is
written into the check's SQL, and observers are told each role and can stop listening."""

from __future__ import annotations

import pytest

from pipeline.metadata import reads
from pipeline.metadata.reads import Freshness, Role


@pytest.mark.parametrize("position", ["0/1'; DROP TABLE photos; --", "", "16/B374D848/1",
                                      "G/1", "123456789/1", " 0/1"])
def test_a_position_that_is_not_a_wal_position_is_refused(position: str) -> None:
    assert not reads.valid(position)
    with pytest.raises(ValueError, match="not a WAL position"):
        Freshness(5.0, position)


def test_the_check_carries_the_bound_and_the_position() -> None:
    check = Freshness(2.5, "16/B374D848").check()
    assert "<= 2.5" in check and "'16/B374D848'::pg_lsn" in check
    assert reads.valid("16/B374D848") and reads.valid("0/0")
    assert "pg_lsn" not in Freshness(2.5).check()


def test_observers_hear_each_role_until_they_stop() -> None:
    heard: list[Role] = []
    stop = reads.observe(heard.append)
    reads.answered("standby")
    reads.answered("primary")
    stop()
    reads.answered("standby")
    assert heard == ["standby", "primary"]
