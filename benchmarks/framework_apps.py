"""The two contenders of :mod:`benchmarks.frameworks`, as uvicorn factories over the
environment's settings (the same door, ticket check and document in both)."""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from pipeline.settings import Settings
from pipeline.web import app as web
from pipeline.web import tickets
from pipeline.web.errors import error_response
from pipeline.web.server import build


def starlette() -> Any:
    """photopipe's own app."""
    return web.create_app(build(Settings.from_env()))


def fastapi() -> Any:
    """The same route in FastAPI: its path parameter and header injection, the same work."""
    from fastapi import FastAPI, Header

    settings = Settings.from_env()
    door = build(settings)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                       allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE"])

    @app.get("/v1/photos/{photo_id}")
    async def photo(photo_id: int, authorization: str = Header("")) -> Response:
        try:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer":
                raise tickets.Unauthorized("send a ticket")
            ticket = tickets.verify(token.strip(), settings)
            return await web._document(door, photo_id, ticket)
        except Exception as exc:  # answered from the same table as photopipe's own
            return error_response(exc)

    return app
