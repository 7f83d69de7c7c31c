"""The one table from errors to HTTP responses: a test per row, and the rest."""

from __future__ import annotations

import json

import pytest
from starlette.exceptions import HTTPException

from pipeline import errors
from pipeline.web.errors import (
    BadRequest,
    BodyTimeout,
    IncompleteBody,
    RateLimited,
    error_response,
)
from pipeline.web.tickets import Unauthorized


@pytest.mark.parametrize(("exc", "status", "code"), [
    (Unauthorized("no ticket"), 401, "unauthorized"),
    (errors.PhotoNotFound("no photo 3"), 404, "not_found"),
    (errors.ObjectNotFound("no object"), 404, "not_found"),
    (errors.TooLarge("too big"), 413, "too_large"),
    (errors.UnsupportedFormat("not an image"), 415, "unsupported_format"),
    (errors.Truncated("ends early"), 422, "truncated"),
    (errors.Corrupt("bad"), 422, "corrupt"),
    (BadRequest("strength"), 400, "bad_request"),
    (IncompleteBody("short"), 400, "incomplete_body"),
    (BodyTimeout("slow"), 408, "body_timeout"),
    (RateLimited("over 3 uploads", 17), 429, "rate_limited"),
    (errors.DatabaseUnavailable("down"), 503, "unavailable"),
    (errors.StorageUnavailable("down"), 503, "unavailable"),
    (errors.StorageRejected("credentials"), 500, "configuration"),
    (HTTPException(405), 405, "method_not_allowed"),
    (HTTPException(404), 404, "not_found"),
    (RuntimeError("a bug with a secret in it"), 500, "internal_error"),
])
def test_each_error_answers_its_status_and_code(exc: Exception, status: int, code: str) -> None:
    response = error_response(exc)
    body = json.loads(bytes(response.body))
    assert response.status_code == status and set(body) == {"error"}
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str)
    assert "secret" not in body["error"]["message"]  # an unexpected error is never shown
    assert ("retry-after" in response.headers) == (status in (429, 503))
    assert ("www-authenticate" in response.headers) == (status == 401)


def test_a_rate_limit_says_when_to_come_back() -> None:
    assert error_response(RateLimited("over 3", 17)).headers["retry-after"] == "17"
