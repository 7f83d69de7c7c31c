"""Upload tickets: the web tier's signed word that a user may use the API, for a while.

A ticket is ``v1.<payload>.<signature>``, both parts base64url without padding: the payload is
JSON (``sub``, the user id as a decimal string; ``exp``, seconds since the epoch; ``max``, the
largest upload in bytes), the signature HMAC-SHA256 over ``v1.<payload>`` with
``PHOTOPIPE_SECRET_KEY``. Clients send it as ``Authorization: Bearer <ticket>``; anything that
does not verify is :class:`Unauthorized`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigurationError
from pipeline.settings import Settings

VERSION = "v1"
DEFAULT_TTL = 3600  # seconds


class Unauthorized(Exception):
    """No ticket, or one that does not verify: the request is refused (401)."""


@dataclass(frozen=True)
class Ticket:
    """What a verified ticket allows."""

    user_id: int
    expires: int  # seconds since the epoch
    max_bytes: int


def issue(user_id: int, *, ttl: int = DEFAULT_TTL, max_bytes: int | None = None,
          settings: Settings) -> str:
    """A ticket for ``user_id``, valid ``ttl`` seconds, for uploads of at most ``max_bytes``
    (never more than ``PHOTOPIPE_MAX_BYTES``; default: that limit).

    Raises:
        ValueError: a user id, ttl or byte limit that cannot be.
        ConfigurationError: no key to sign with (see :func:`key`).
    """
    limit = settings.limits.max_bytes if max_bytes is None else max_bytes
    if not 0 < user_id < 2**63 or ttl < 1 or not 0 < limit <= settings.limits.max_bytes:
        raise ValueError(f"a ticket needs a user id of 1 to 2**63-1, a ttl of at least one "
                         f"second and a byte limit of 1 to {settings.limits.max_bytes}")
    payload = _b64(json.dumps({"sub": str(user_id), "exp": int(time.time()) + ttl,
                               "max": limit}, separators=(",", ":")).encode())
    signed = f"{VERSION}.{payload}"
    return f"{signed}.{_b64(_sign(signed, key(settings)))}"


def verify(ticket: str, settings: Settings, *, now: float | None = None) -> Ticket:
    """The ticket's user and limits, if it is ours and has not expired.

    Raises:
        Unauthorized: malformed, signed with another key, or expired.
    """
    version, _, rest = ticket.partition(".")
    payload, _, signature = rest.partition(".")
    expected = _sign(f"{version}.{payload}", key(settings))
    if version != VERSION or not hmac.compare_digest(_unb64(signature), expected):
        raise Unauthorized("the ticket does not verify")
    try:
        claims = json.loads(_unb64(payload))
        found = Ticket(int(claims["sub"]), int(claims["exp"]), int(claims["max"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthorized("the ticket's payload is malformed") from exc
    if found.expires <= (time.time() if now is None else now):
        raise Unauthorized("the ticket has expired")
    return found


def key(settings: Settings) -> bytes:
    """The signing key: ``PHOTOPIPE_SECRET_KEY``, or on the embedded default (SQLite) one kept
    beside its database, made on first use.

    Raises:
        ConfigurationError: neither is there (a production deployment must set the key).
    """
    if settings.secret_key:
        return settings.secret_key.encode()
    if not settings.database_url.startswith("sqlite:///"):
        raise ConfigurationError("PHOTOPIPE_SECRET_KEY is not set: the HTTP API signs its "
                                 "tickets and URLs with it (at least 16 characters)")
    path = Path(settings.database_url.removeprefix("sqlite://")).parent / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{secrets.token_hex(4)}")
        temporary.write_text(secrets.token_urlsafe(32))
        temporary.chmod(0o600)
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs
            os.link(temporary, path)
        temporary.unlink()
    return path.read_text().strip().encode()


def _sign(message: str, secret: bytes) -> bytes:
    return hmac.new(secret, message.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise Unauthorized("the ticket is not base64url") from exc
