"""What a person sees: the page ``serve`` answers at ``/`` (no build step: one HTML file with a
few lines of ``fetch``), and the routes it uses beyond the API's own: the looks, a photo's
preview under each (drawn by ``serve``), a photo's and a user's photos' markup from
:func:`pipeline.web.picture`, and, on the embedded default only, a ticket for the demo's user
(elsewhere the web tier mints tickets)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from pipeline import previews
from pipeline.documents import document
from pipeline.errors import PhotoNotFound
from pipeline.web import tickets
from pipeline.web.door import Door, authorise
from pipeline.web.errors import decimal
from pipeline.web.markup import picture

PAGE = (Path(__file__).parent / "page" / "index.html").read_text()
DEMO_USER = 1  # the embedded default's one person
GRID = 60  # photos the grid shows, newest first
SIZES = "(max-width: 640px) 100vw, 640px"


async def index(request: Request, door: Door) -> Response:
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-cache"})


def embedded(door: Door) -> bool:
    """The local demo: no broker, SQLite, a local folder."""
    settings = door.settings
    return settings.broker_url is None and settings.database_url.startswith("sqlite:") and \
        urlsplit(settings.storage_url).scheme == "file"


async def demo_ticket(request: Request, door: Door) -> Response:
    """A ticket for the demo's user, on the embedded default only (404 anywhere else)."""
    if not embedded(door):
        raise PhotoNotFound("no demo here: the web tier mints tickets")
    ticket = tickets.issue(DEMO_USER, ttl=3600, settings=door.settings)
    return JSONResponse({"ticket": ticket, "user_id": str(DEMO_USER)},
                        headers={"Cache-Control": "no-store"})


async def looks(request: Request, door: Door) -> Response:
    authorise(request, door)
    return JSONResponse({"looks": previews.looks()},
                        headers={"Cache-Control": "public, max-age=3600"})


async def preview(request: Request, door: Door) -> Response:
    """``GET /v1/photos/{id}/previews/{look}``: the photo under the look, small (JPEG)."""
    ticket = authorise(request, door)
    photo_id, look = _photo_id(request), request.path_params["look"]
    data = await run_in_threadpool(lambda: previews.preview(
        photo_id, ticket.user_id, look, store=door.store(), db=door.db(),
        settings=door.settings))
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


async def photo_picture(request: Request, door: Door) -> Response:
    """``GET /v1/photos/{id}/picture``: the photo's markup, as it stands now."""
    ticket = authorise(request, door)
    row, renditions = await run_in_threadpool(door.photo, _photo_id(request))
    if row is None or row.user_id != ticket.user_id:
        raise PhotoNotFound("no such photo")
    markup = picture(document(row, renditions, door.links().url), sizes=SIZES,
                     alt=f"photo {row.id}", css_class="photo")
    return HTMLResponse(markup, headers={"Cache-Control": "no-store"})


async def grid(request: Request, door: Door) -> Response:
    """``GET /v1/users/{id}/grid``: the user's newest photos' markup, one after another."""
    ticket = authorise(request, door)
    raw = request.path_params["user_id"]
    if not decimal(raw) or int(raw) != ticket.user_id:
        raise PhotoNotFound("no such user's photos")
    found = await run_in_threadpool(door.listing, ticket.user_id, None, GRID)
    links = door.links()
    cells = [picture(document(row, renditions, links.url), sizes="200px",
                     alt=f"photo {row.id}", css_class="cell") for row, renditions in found]
    return HTMLResponse("".join(cells), headers={"Cache-Control": "no-store"})


def _photo_id(request: Request) -> int:
    raw = request.path_params["photo_id"]
    if not decimal(raw) or not 0 < int(raw) < 2**63:
        raise PhotoNotFound(f"no photo {raw}")
    return int(raw)

