"""Resumable uploads over the tus 1.0.0 protocol (core, creation, termination, expiration), so
existing clients work unchanged (tus-js-client, Uppy, TUSKit, tus-android-client, tuspy).

``POST /v1/uploads`` with ``Upload-Length`` (``Upload-Metadata``: ``filter``, ``strength``,
``ladder``, base64 as tus encodes them; anything else a client sends, such as ``filename``,
is ignored) creates one; ``PATCH`` appends at ``Upload-Offset``; ``HEAD`` says how far it got;
``DELETE`` abandons it. The last ``PATCH`` submits the photo: its answer and every later
``HEAD`` carry ``Photopipe-Photo-Id``. The handlers are thin: :mod:`pipeline.uploads` keeps
the upload's state in the database and its bytes in the store, so any process may continue
an upload another one started.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pipeline.errors import PhotoNotFound, TooLarge
from pipeline.jobs import Options
from pipeline.uploads import Progress, Uploads
from pipeline.web import metrics
from pipeline.web.body import read_upload
from pipeline.web.door import Door, authorise, written
from pipeline.web.errors import BadRequest, TusVersion, WrongContentType, decimal, error_response

VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration"
CHUNK_TYPE = "application/offset+octet-stream"
HEADERS = ["Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Upload-Offset",
           "Upload-Length", "Upload-Metadata", "Upload-Expires", "Photopipe-Photo-Id"]
Handler = Callable[[Request, Door], Awaitable[Response]]
T = TypeVar("T")


def protocol(handler: Handler) -> Handler:
    """Every answer, errors too, says ``Tus-Resumable``; a request must speak tus 1.0.0."""
    async def answered(request: Request, door: Door) -> Response:
        try:
            if request.method != "OPTIONS" and \
                    request.headers.get("tus-resumable") != VERSION:
                raise TusVersion(f"send Tus-Resumable: {VERSION}")
            response = await handler(request, door)
        except Exception as exc:  # every error is answered from the one table
            response = error_response(exc)
            if isinstance(exc, TusVersion):
                response.headers["Tus-Version"] = VERSION
        response.headers["Tus-Resumable"] = VERSION
        return response
    return answered


@protocol
async def discover(request: Request, door: Door) -> Response:
    """``OPTIONS /v1/uploads``: what this server speaks."""
    return Response(status_code=204, headers={
        "Tus-Version": VERSION, "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(door.settings.limits.max_bytes)})


@protocol
async def create(request: Request, door: Door) -> Response:
    """``POST /v1/uploads``: 201 with the upload's ``Location``."""
    ticket = authorise(request, door)
    raw = request.headers.get("upload-length", "")
    if not decimal(raw):
        raise BadRequest("send Upload-Length: the upload's size in bytes")
    limit = min(ticket.max_bytes, door.settings.limits.max_bytes)
    if int(raw) > limit:
        raise TooLarge(f"{raw} bytes is over the limit of {limit}")
    if request.headers.get("content-length", "0") != "0":
        raise BadRequest("send the bytes with PATCH (creation-with-upload is not offered)")
    options = options_of(request.headers.get("upload-metadata", ""))
    await run_in_threadpool(door.admit, ticket.user_id)
    try:
        begun = await _use(door, lambda u: u.create(ticket.user_id, int(raw), options))
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    headers = _headers(begun)
    headers["Location"] = f"/v1/uploads/{begun.photo_id}"
    return Response(status_code=201, headers=headers)


@protocol
async def head(request: Request, door: Door) -> Response:
    """``HEAD /v1/uploads/{id}``: ``Upload-Offset`` and ``Upload-Length``, never cached."""
    ticket = authorise(request, door)
    photo_id = upload_id(request)
    progress = await _use(door, lambda u: u.progress(photo_id, ticket.user_id))
    headers = _headers(progress)
    headers["Cache-Control"] = "no-store"
    return Response(status_code=200, headers=headers)


@protocol
async def append(request: Request, door: Door) -> Response:
    """``PATCH /v1/uploads/{id}``: the body appended at ``Upload-Offset``; 204 with the new
    offset. The offset is checked before the body is read, and the body may not run past the
    upload's length (413 before a byte of it is read, when its ``Content-Length`` says so)."""
    ticket = authorise(request, door)
    photo_id = upload_id(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != CHUNK_TYPE:
        raise WrongContentType(f"a chunk is sent as Content-Type: {CHUNK_TYPE}")
    offset = request.headers.get("upload-offset", "")
    if not decimal(offset):
        raise BadRequest("send Upload-Offset: where the chunk begins")
    at = int(offset)
    now = await _use(door, lambda u: u.peek(photo_id, ticket.user_id, at))
    with metrics.UPLOADS.track_inprogress():
        data = await read_upload(request, now.length - now.offset,
                                 door.settings.http_body_timeout, sniffed=False)
        progress = await _use(door, lambda u: u.append(photo_id, ticket.user_id, at, data))
    headers = _headers(progress)
    if progress.submitted:  # where the photo was written: see Photopipe-Read-After
        headers.update(written(await run_in_threadpool(door.written, photo_id)))
    return Response(status_code=204, headers=headers)


@protocol
async def terminate(request: Request, door: Door) -> Response:
    """``DELETE /v1/uploads/{id}``: the upload and what it wrote are removed; 204."""
    ticket = authorise(request, door)
    photo_id = upload_id(request)
    await _use(door, lambda u: u.abandon(photo_id, ticket.user_id))
    return Response(status_code=204)


async def _use(door: Door, call: Callable[[Uploads], T]) -> T:
    """``call`` on the use case, in a worker thread (whose own store and database it gets)."""
    return await run_in_threadpool(lambda: call(door.uploads()))


def upload_id(request: Request) -> int:
    raw = request.path_params["upload_id"]
    if not decimal(raw) or not 0 < int(raw) < 2**63:
        raise PhotoNotFound(f"no upload {raw}")
    return int(raw)


def options_of(metadata: str) -> Options:
    """The render options from ``Upload-Metadata`` (``key base64``, comma-separated)."""
    found: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in metadata.split(","))):
        key, _, value = pair.partition(" ")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise BadRequest(f"Upload-Metadata {key!r} is not base64 of UTF-8") from exc
    try:
        return Options(found.get("ladder") or "default", found.get("filter") or None,
                       float(found.get("strength") or 1.0))
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _headers(progress: Progress) -> dict[str, str]:
    headers = {"Upload-Offset": str(progress.offset), "Upload-Length": str(progress.length),
               "Upload-Expires": formatdate(progress.expires, usegmt=True)}
    if progress.submitted:
        headers["Photopipe-Photo-Id"] = str(progress.photo_id)
    return headers
