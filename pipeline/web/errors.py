"""Every error the HTTP face answers, in one table: photopipe's error tree and the door's own
refusals, each to a status and a stable code. A response is always
``{"error": {"code", "message"}}``; a handler never builds one by hand, and nothing unexpected
shows a traceback (it is logged, and answered 500 ``internal_error``).
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from pipeline.errors import (
    ConfigurationError,
    ImageRejected,
    ObjectNotFound,
    PhotoNotFound,
    TooLarge,
    TransientError,
    UnsupportedFormat,
)
from pipeline.uploads import OffsetMismatch, UploadBusy
from pipeline.web.tickets import Unauthorized

log = logging.getLogger(__name__)
RETRY_AFTER = 5  # seconds a client should wait after a 503


class BadRequest(Exception):
    """The request's options or headers are wrong (400); the message says which."""


class BodyTimeout(Exception):
    """The client sent nothing for ``PHOTOPIPE_HTTP_BODY_TIMEOUT`` seconds (408)."""


class RateLimited(Exception):
    """The user started more uploads this minute than ``PHOTOPIPE_UPLOADS_PER_MINUTE`` (429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TusVersion(Exception):
    """A resumable upload's request without ``Tus-Resumable: 1.0.0`` (412)."""


class WrongContentType(Exception):
    """A chunk of a resumable upload not sent as ``application/offset+octet-stream`` (415)."""


class IncompleteBody(Exception):
    """The body ended before its declared length, or the client went away (400)."""


def decimal(text: str) -> bool:
    """Whether ``text`` is a non-negative decimal number in ASCII digits (``str.isdigit`` also
    takes "³" and other Unicode digits, which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


# Most specific first: the first row whose class matches answers.
TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (Unauthorized, 401, "unauthorized"),
    (PhotoNotFound, 404, "not_found"),
    (ObjectNotFound, 404, "not_found"),
    (TooLarge, 413, "too_large"),
    (UnsupportedFormat, 415, "unsupported_format"),
    (ImageRejected, 422, "rejected"),
    (BadRequest, 400, "bad_request"),
    (IncompleteBody, 400, "incomplete_body"),
    (BodyTimeout, 408, "body_timeout"),
    (RateLimited, 429, "rate_limited"),
    (OffsetMismatch, 409, "offset_mismatch"),
    (UploadBusy, 423, "upload_locked"),
    (TusVersion, 412, "tus_version"),
    (WrongContentType, 415, "bad_content_type"),
    (TransientError, 503, "unavailable"),
    (ConfigurationError, 500, "configuration"),
)
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def error_response(exc: BaseException) -> JSONResponse:
    """The response for ``exc``: its row of :data:`TABLE`, an HTTPException's own status, or
    500 ``internal_error`` (logged with its traceback, which the client never sees)."""
    for kind, status, code in TABLE:
        if isinstance(exc, kind):
            response = _json(status, getattr(exc, "code", code) if kind is ImageRejected
                             else code, str(exc) or code.replace("_", " "))
            if isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
    if isinstance(exc, HTTPException):
        return _json(exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"),
                     str(exc.detail))
    log.error("unexpected error answering a request", exc_info=exc)
    return _json(500, "internal_error", "photopipe hit an error of its own; it is logged")


def _json(status: int, code: str, message: str) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER)} if status == 503 else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="photopipe"'
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)
