"""The HTTP API (Starlette): routes as a plain list, each handler thin. A handler authorises the
request, calls one use case in a worker thread (the stores are blocking), and turns the result
into a response; every error goes through :mod:`pipeline.web.errors`."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.documents import FILES, document, etag
from pipeline.errors import PhotoNotFound
from pipeline.jobs import Options
from pipeline.metadata import PhotoRow, RenditionRow
from pipeline.producer import Upload
from pipeline.web import metrics, page, tickets, tus
from pipeline.web.body import read_upload
from pipeline.web.door import READ_AFTER, Door, authorise, read_after, written
from pipeline.web.errors import TABLE, BadRequest, decimal, error_response

__all__ = ["Door", "create_app"]

MAX_ID = 2**63 - 1
PAGE, MAX_PAGE = 20, 100  # photos a listing answers by default, and at most
MAX_JSON = 4096  # bytes of a PATCH body


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
        Route("/v1/photos/{photo_id}", bind(change), methods=["PATCH"]),
        Route("/v1/photos/{photo_id}", bind(remove), methods=["DELETE"]),
        Route("/v1/users/{user_id}/photos", bind(listing), methods=["GET"]),
        Route("/v1/users/{user_id}/grid", bind(page.grid), methods=["GET"]),
        Route("/v1/photos/{photo_id}/picture", bind(page.photo_picture), methods=["GET"]),
        Route("/v1/photos/{photo_id}/previews/{look}", bind(page.preview), methods=["GET"]),
        Route("/v1/looks", bind(page.looks), methods=["GET"]),
        Route("/v1/demo/ticket", bind(page.demo_ticket), methods=["GET"]),
        Route("/", bind(page.index), methods=["GET"]),
        Route("/v1/uploads", bind(tus.discover), methods=["OPTIONS"]),
        Route("/v1/uploads", bind(tus.create), methods=["POST"]),
        Route("/v1/uploads/{upload_id}", bind(tus.head), methods=["HEAD"]),
        Route("/v1/uploads/{upload_id}", bind(tus.append), methods=["PATCH"]),
        Route("/v1/uploads/{upload_id}", bind(tus.terminate), methods=["DELETE"]),
        Route(FILES + "{key:path}", bind(files), methods=["GET"]),
        Route("/v1/openapi.json", bind(openapi), methods=["GET"]),
        Route("/healthz", bind(healthz), methods=["GET"]),
        Route("/metrics", bind(metrics_page), methods=["GET"]),
        Route("/readyz", bind(readyz), methods=["GET"]),
    ]
    handlers: dict[Any, Any] = {kind: _handle for kind, _, _ in TABLE}
    handlers[HTTPException] = _handle
    handlers[Exception] = _handle
    cors = Middleware(JsonCors, allow_origins=list(door.settings.cors_origins),
                      allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE"],
                      allow_headers=["Authorization", "Content-Type", "Idempotency-Key",
                                     READ_AFTER, *tus.HEADERS],
                      expose_headers=["Location", "ETag", READ_AFTER, *tus.HEADERS],
                      max_age=600)
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=[cors],
                    lifespan=door.lifespan)
    app.router.redirect_slashes = False  # an unknown path is a JSON 404, not a redirect
    return app


class JsonCors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered like every other error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        return error_response(BadRequest(bytes(response.body).decode() or "CORS refused"))


async def _handle(request: Request, exc: Exception) -> Response:
    return error_response(exc)


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
    key = idempotency_key(request)
    if door.settings.uploads_per_minute:  # counted in the database: a thread's work
        await run_in_threadpool(door.admit, ticket.user_id)
    limit = min(ticket.max_bytes, door.settings.limits.max_bytes)
    with metrics.UPLOADS.track_inprogress():
        data = await read_upload(request, limit, door.settings.http_body_timeout)

        def accept() -> tuple[int, str | None, PhotoRow | None, list[RenditionRow]]:
            """The submit, where it was written, and the row to answer with: one thread."""
            photo_id = door.submit(Upload(ticket.user_id, data, None, options.filter,
                                          options.strength, options.ladder, key))
            after = door.written(photo_id)
            return photo_id, after, *door.photo(photo_id, after)

        photo_id, after, row, renditions = await run_in_threadpool(accept)
    response = _answer(door, photo_id, ticket, row, renditions, status_code=202, after=after)
    response.headers["Location"] = f"/v1/photos/{photo_id}"
    return response


async def photo(request: Request, door: Door) -> Response:
    """``GET /v1/photos/{id}``: the document, for its own user only (404 for anyone else)."""
    ticket = authorise(request, door)
    return await _document(door, id_of(request, "photo_id"), ticket,
                           if_none_match=request.headers.get("if-none-match"),
                           after=read_after(request))


async def change(request: Request, door: Door) -> Response:
    """``PATCH /v1/photos/{id}`` with ``{"filter", "strength", "ladder"}`` (each optional):
    rendered again with them, as a new generation; 202 with the document."""
    ticket = authorise(request, door)
    photo_id = id_of(request, "photo_id")
    changes = await _json_body(request, door)
    row = await run_in_threadpool(door.owned, photo_id, ticket.user_id)
    await run_in_threadpool(door.rerender, row, _changed(row, changes))
    after = await run_in_threadpool(door.written, photo_id)
    return await _document(door, photo_id, ticket, status_code=202, after=after)


async def remove(request: Request, door: Door) -> Response:
    """``DELETE /v1/photos/{id}``: the photo, its renditions and its original; 204."""
    ticket = authorise(request, door)
    photo_id = id_of(request, "photo_id")
    await run_in_threadpool(door.delete, photo_id, ticket.user_id)
    return Response(status_code=204, headers=written(await run_in_threadpool(door.written,
                                                                             photo_id)))


async def listing(request: Request, door: Door) -> Response:
    """``GET /v1/users/{id}/photos?before=&limit=``: newest first; ``next`` is the
    ``before`` of the next page (null on the last)."""
    ticket = authorise(request, door)
    if id_of(request, "user_id") != ticket.user_id:
        raise PhotoNotFound("no such user's photos")  # another user's: as if none
    before = request.query_params.get("before")
    limit = request.query_params.get("limit") or str(PAGE)
    if (before is not None and not decimal(before)) or not decimal(limit) or \
            not 1 <= int(limit) <= MAX_PAGE:
        raise BadRequest(f"before is a photo id, limit 1 to {MAX_PAGE}")
    newest = before is None or int(before) > MAX_ID  # past every id: from the newest
    found = await run_in_threadpool(door.listing, ticket.user_id,
                                    None if newest else int(before or 0), int(limit),
                                    read_after(request))
    links = door.links()
    page = [document(row, renditions, links.url) for row, renditions in found]
    last = found[-1][0].id if len(found) == int(limit) else None
    return JSONResponse({"photos": page, "next": None if last is None else str(last)},
                        headers={"Cache-Control": "no-store"})


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header: 1 to 255 printable ASCII characters, or absent."""
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= 255 and key.isascii() and key.isprintable()):
        raise BadRequest("Idempotency-Key is 1 to 255 printable ASCII characters")
    return key


def id_of(request: Request, name: str) -> int:
    """A path's id; anything but one is a photo that does not exist (404)."""
    raw = request.path_params[name]
    if not decimal(raw) or not 0 < int(raw) <= MAX_ID:
        raise PhotoNotFound(f"no photo {raw}")
    return int(raw)


async def _json_body(request: Request, door: Door) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_JSON:
        raise BadRequest(f"a JSON body of at most {MAX_JSON} bytes")
    try:
        found = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadRequest("the body is not JSON") from exc
    if not isinstance(found, dict) or set(found) - {"filter", "strength", "ladder"}:
        raise BadRequest("send an object of filter, strength and ladder")
    return found


def _changed(row: PhotoRow, changes: dict[str, Any]) -> Options:
    """The photo's options with ``changes`` applied. Raises BadRequest."""
    try:
        strength = changes.get("strength", row.strength)
        if isinstance(strength, bool) or not isinstance(strength, int | float):
            raise ValueError("strength must be a number")
        return Options(changes.get("ladder", row.ladder), changes.get("filter", row.filter),
                       float(strength))
    except (ValueError, TypeError) as exc:
        raise BadRequest(str(exc)) from exc


async def _document(door: Door, photo_id: int, ticket: tickets.Ticket, *, status_code: int = 200,
                    if_none_match: str | None = None, after: str | None = None) -> Response:
    """The photo's document; a write's (``status_code`` 202) with ``after``, the position it
    was written at, in ``Photopipe-Read-After`` too."""
    row, renditions = await run_in_threadpool(door.photo, photo_id, after)
    return _answer(door, photo_id, ticket, row, renditions, status_code=status_code,
                   if_none_match=if_none_match, after=after)


def _answer(door: Door, photo_id: int, ticket: tickets.Ticket, row: PhotoRow | None,
            renditions: list[RenditionRow], *, status_code: int,
            if_none_match: str | None = None, after: str | None = None) -> Response:
    """The photo's document from its row and renditions, for its own user only."""
    if row is None or row.user_id != ticket.user_id:
        raise PhotoNotFound(f"no photo {photo_id}")
    tag = etag(row)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache" if row.status == "ready"
               else "no-store"}
    if status_code == 202:
        headers.update(written(after))
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


OPENAPI = json.loads((Path(__file__).parent / "openapi.json").read_text())


async def openapi(request: Request, door: Door) -> Response:
    """The API's contract (the tests fuzz the API from it and check every response)."""
    return JSONResponse(OPENAPI)


async def metrics_page(request: Request, door: Door) -> Response:
    body, kind = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=kind)


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
