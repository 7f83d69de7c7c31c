"""The API fuzzed from its own OpenAPI document (schemathesis) on a real `photopipe serve`: no
5xx, and every response as the document says (status, content type, body schema), with a
valid ticket and without one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.harness import Server, cli, embedded, serve
from tests.workers.harness import photo

# A tus chunk is raw bytes, as application/octet-stream is.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fuzz")
    with serve(embedded(folder / "data", PHOTOPIPE_HTTP_BODY_TIMEOUT="2"),
               folder / "serve.log") as running:
        yield running


@pytest.fixture(scope="module")
def token(api: Server) -> str:
    return cli(api.env, "ticket", "--user-id", "4242").stdout.strip()


def fuzz(api: Server, authorization: str, examples: int,
         ids: dict[str, str] | None = None) -> list[str]:
    """Every operation of the published document, ``examples`` cases each (hypothesis draws
    them from the document; path parameters named in ``ids`` set to those, so that a case
    gets past the ownership checks); the operations fuzzed, by name."""
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{api.port}/v1/openapi.json")
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here: a bad document

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def answers_as_documented(case: Any) -> None:
            for name, value in (ids or {}).items():
                if name in (case.path_parameters or {}):
                    case.path_parameters[name] = value
            case.call_and_validate(headers={"Authorization": authorization}, checks=CHECKS)

        answers_as_documented()
        fuzzed.append(operation.label)
    return fuzzed


# Every operation of the document but the one serving it (schemathesis leaves that out).
OPERATIONS = {"POST /v1/photos", "GET /v1/photos/{photo_id}", "PATCH /v1/photos/{photo_id}",
              "DELETE /v1/photos/{photo_id}", "GET /v1/users/{user_id}/photos",
              "GET /v1/files/{key}", "GET /metrics", "GET /healthz", "GET /readyz",
              "OPTIONS /v1/uploads", "POST /v1/uploads", "HEAD /v1/uploads/{upload_id}",
              "PATCH /v1/uploads/{upload_id}", "DELETE /v1/uploads/{upload_id}",
              "GET /", "GET /v1/demo/ticket", "GET /v1/looks",
              "GET /v1/photos/{photo_id}/previews/{look}", "GET /v1/photos/{photo_id}/picture",
              "GET /v1/users/{user_id}/grid"}


def test_every_operation_answers_as_documented(api: Server, token: str) -> None:
    assert set(fuzz(api, f"Bearer {token}", 30)) == OPERATIONS


def test_the_users_own_photo_and_listing_answer_as_documented(api: Server, token: str) -> None:
    """Past the ownership checks: the ticket's user and one of their real photos."""
    posted = api.request("POST", "/v1/photos", photo(1, size=(200, 150)),
                         {"Authorization": f"Bearer {token}"})
    assert posted.status == 202
    created = api.request("POST", "/v1/uploads", b"", {
        "Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0",
        "Upload-Length": "100000"})
    assert created.status == 201
    ids = {"user_id": "4242", "photo_id": posted.json()["photo_id"],
           "upload_id": created.headers["location"].rsplit("/", 1)[1]}
    assert set(fuzz(api, f"Bearer {token}", 60, ids)) == OPERATIONS


def test_without_a_ticket_every_operation_answers_as_documented(api: Server) -> None:
    assert set(fuzz(api, "Bearer nonsense", 5)) == OPERATIONS


def test_the_document_is_what_serve_publishes(api: Server) -> None:
    published = api.request("GET", "/v1/openapi.json")
    source = Path(__file__).resolve().parents[2] / "pipeline/web/openapi.json"
    assert published.status == 200 and published.json() == json.loads(source.read_text())
