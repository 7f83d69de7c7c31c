"""The view that mints upload tickets for the logged-in user."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from pipeline.settings import Settings
from pipeline.web import tickets

TTL = 600  # seconds a page has to start its upload


def ticket(request: HttpRequest) -> Any:
    """``{"ticket", "user_id"}`` for the logged-in user (the user's primary key is photopipe's
    user id); 401 for anyone else, 405 for anything but GET and POST."""
    if request.method not in ("GET", "POST"):
        return JsonResponse({"error": {"code": "method_not_allowed",
                                       "message": "GET or POST"}}, status=405)
    if not request.user.is_authenticated:
        return JsonResponse({"error": {"code": "unauthorized", "message": "log in first"}},
                            status=401)
    user_id = int(request.user.pk)
    minted = tickets.issue(user_id, ttl=TTL, settings=Settings.from_env())
    response = JsonResponse({"ticket": minted, "user_id": str(user_id)})
    response["Cache-Control"] = "no-store"
    return response
