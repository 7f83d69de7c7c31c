"""The HTTP API (Starlette): routes as a plain list, each handler thin. A handler authorises the
request, calls one use case in a worker thread (the stores are blocking), and turns the result
into a response; every error goes through :mod:`pipeline.web.errors`."""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.errors import PhotoNotFound
from pipeline.jobs import Options
from pipeline.metadata import MetadataStore, PhotoRow, RenditionRow
from pipeline.producer import Publisher, Upload, submit
from pipeline.settings import Settings
from pipeline.storage import ObjectStore
from pipeline.web import tickets
from pipeline.web.body import read_upload
from pipeline.web.documents import FILES, Links, document, etag
from pipeline.web.errors import TABLE, BadRequest, error_response

MAX_ID = 2**63 - 1


@dataclass
class Door:
    """What the handlers reach the use cases with: the settings, a store and a database per
    thread (connections are not shared across threads), the publisher, the URL builder."""

    settings: Settings
    open_store: Callable[[], ObjectStore]
    open_db: Callable[[], MetadataStore]
    publisher: Publisher
    key: bytes
    _local: threading.local = field(default_factory=threading.local)

    def store(self) -> ObjectStore:
        if not hasattr(self._local, "store"):
            self._local.store = self.open_store()
        store: ObjectStore = self._local.store
        return store

    def db(self) -> MetadataStore:
        if not hasattr(self._local, "db"):
            self._local.db = self.open_db()
        db: MetadataStore = self._local.db
        return db

    def links(self) -> Links:
        return Links(self.settings, self.store(), self.key)

    def submit(self, upload: Upload) -> int:
        return submit(upload, self.store(), self.db(), self.publisher, self.settings)

    def photo(self, photo_id: int) -> tuple[PhotoRow | None, list[RenditionRow]]:
        row = self.db().get(photo_id)
        ready = row is not None and row.status == "ready"
        return row, self.db().renditions(photo_id) if ready else []


def create_app(door: Door) -> Starlette:
    """The ASGI app over ``door``."""
    def bind(handler: Callable[[Request, Door], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            response: Response = await handler(request, door)
            return response
        return endpoint

    routes = [
        Route("/v1/photos", bind(upload), methods=["POST"]),
        Route("/v1/photos/{photo_id}", bind(photo), methods=["GET"]),
        Route(FILES + "{key:path}", bind(files), methods=["GET"]),
        Route("/healthz", bind(healthz), methods=["GET"]),
        Route("/readyz", bind(readyz), methods=["GET"]),
    ]
    handlers: dict[Any, Any] = {kind: _handle for kind, _, _ in TABLE}
    handlers[HTTPException] = _handle
    handlers[Exception] = _handle
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.router.redirect_slashes = False  # an unknown path is a JSON 404, not a redirect
    return app


async def _handle(request: Request, exc: Exception) -> Response:
    return error_response(exc)


def authorise(request: Request, door: Door) -> tickets.Ticket:
    """The request's ticket, verified. Raises Unauthorized."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise tickets.Unauthorized("send a ticket: Authorization: Bearer <ticket>")
    return tickets.verify(token.strip(), door.settings)


def options_of(request: Request) -> Options:
    """The render options from the query (``filter``, ``strength``, ``ladder``)."""
    query = request.query_params
    unknown = set(query) - {"filter", "strength", "ladder"}
    if unknown:
        raise BadRequest(f"unknown parameters: {', '.join(sorted(unknown))}")
    try:
        return Options(query.get("ladder") or "default", query.get("filter") or None,
                       float(query.get("strength") or 1.0))
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


async def upload(request: Request, door: Door) -> Response:
    """``POST /v1/photos``: the raw body is the image; 202 with the photo's document."""
    ticket = authorise(request, door)
    options = options_of(request)
    limit = min(ticket.max_bytes, door.settings.limits.max_bytes)
    data = await read_upload(request, limit, door.settings.http_body_timeout)
    photo_id = await run_in_threadpool(door.submit, Upload(
        ticket.user_id, data, None, options.filter, options.strength, options.ladder))
    response = await _document(door, photo_id, ticket, status_code=202)
    response.headers["Location"] = f"/v1/photos/{photo_id}"
    return response


async def photo(request: Request, door: Door) -> Response:
    """``GET /v1/photos/{id}``: the document, for its own user only (404 for anyone else)."""
    ticket = authorise(request, door)
    raw = request.path_params["photo_id"]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise PhotoNotFound(f"no photo {raw}")
    return await _document(door, int(raw), ticket,
                           if_none_match=request.headers.get("if-none-match"))


async def _document(door: Door, photo_id: int, ticket: tickets.Ticket, *, status_code: int = 200,
                    if_none_match: str | None = None) -> Response:
    row, renditions = await run_in_threadpool(door.photo, photo_id)
    if row is None or row.user_id != ticket.user_id:
        raise PhotoNotFound(f"no photo {photo_id}")
    tag = etag(row)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache" if row.status == "ready"
               else "no-store"}
    if if_none_match is not None and tag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    links = door.links()
    return JSONResponse(document(row, renditions, links.url), status_code=status_code,
                        headers=headers)


async def files(request: Request, door: Door) -> Response:
    """An object of a store with no URLs of its own, behind a signed, expiring URL."""
    key = request.path_params["key"]
    if not door.links().verify(key, request.query_params.get("expires", ""),
                               request.query_params.get("signature", "")):
        raise PhotoNotFound("no such file, or its URL has expired")
    data = await run_in_threadpool(lambda: door.store().get(key))
    kind = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return Response(data, media_type=kind,
                    headers={"Cache-Control": "public, max-age=31536000, immutable"})


async def healthz(request: Request, door: Door) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request, door: Door) -> Response:
    """Ready when the database and the object store answer (raises their transient errors,
    answered 503)."""
    def probe() -> None:
        door.db().get(1)
        door.store().exists("readyz")

    await run_in_threadpool(probe)
    return JSONResponse({"status": "ready"})
