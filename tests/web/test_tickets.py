"""Tickets: what verifies and what does not, each refusal for its own reason."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from pipeline.errors import ConfigurationError
from pipeline.settings import Limits, Settings
from pipeline.web import tickets

KEY = "k" * 32
SETTINGS = Settings(secret_key=KEY, limits=Limits(max_bytes=1000))


def test_a_ticket_names_its_user_expiry_and_limit() -> None:
    before = int(time.time())
    found = tickets.verify(tickets.issue(2**63 - 1, ttl=60, max_bytes=500, settings=SETTINGS),
                           SETTINGS)
    assert found.user_id == 2**63 - 1 and found.max_bytes == 500
    assert before + 60 <= found.expires <= int(time.time()) + 60
    assert tickets.verify(tickets.issue(7, settings=SETTINGS), SETTINGS).max_bytes == 1000


def test_a_ticket_is_good_until_its_expiry_and_not_a_second_more() -> None:
    ticket = tickets.issue(7, ttl=30, settings=SETTINGS)
    expires = tickets.verify(ticket, SETTINGS).expires
    assert tickets.verify(ticket, SETTINGS, now=expires - 0.001).user_id == 7
    with pytest.raises(tickets.Unauthorized, match="expired"):
        tickets.verify(ticket, SETTINGS, now=expires)


def test_a_ticket_signed_with_another_key_does_not_verify() -> None:
    other = Settings(secret_key="o" * 32, limits=SETTINGS.limits)
    with pytest.raises(tickets.Unauthorized, match="does not verify"):
        tickets.verify(tickets.issue(7, settings=other), SETTINGS)


def test_a_changed_payload_does_not_verify() -> None:
    version, payload, signature = tickets.issue(7, settings=SETTINGS).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "8"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(tickets.Unauthorized):
        tickets.verify(f"{version}.{forged}.{signature}", SETTINGS)


@pytest.mark.parametrize("ticket", ["", "v1", "v1..", "v2.e30.AAAA", "v1.e30.!!!!", "garbage"])
def test_malformed_tickets_are_refused(ticket: str) -> None:
    with pytest.raises(tickets.Unauthorized):
        tickets.verify(ticket, SETTINGS)


def test_issue_refuses_what_cannot_be() -> None:
    for bad in ({"user_id": 0}, {"user_id": 2**63}, {"ttl": 0}, {"max_bytes": 1001},
                {"max_bytes": 0}):
        arguments = {"user_id": 7, "ttl": 60, "max_bytes": None, **bad}
        with pytest.raises(ValueError):
            tickets.issue(arguments.pop("user_id"), **arguments, settings=SETTINGS)  # type: ignore[arg-type]


def test_without_a_key_only_the_embedded_default_makes_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PHOTOPIPE_SECRET_KEY"):
        tickets.key(Settings(database_url="postgresql://h/db"))
    embedded = Settings(database_url=f"sqlite:///{tmp_path}/data/photopipe.db")
    made = tickets.key(embedded)
    assert len(made) >= 32 and tickets.key(embedded) == made  # kept, not made anew
    assert (tmp_path / "data/secret_key").stat().st_mode & 0o777 == 0o600
    assert tickets.key(Settings(secret_key=KEY, database_url="postgresql://h/db")) == \
        KEY.encode()
