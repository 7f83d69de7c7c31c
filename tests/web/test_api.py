"""The HTTP API on a real `photopipe serve` (uvicorn on loopback, the embedded default): an
upload followed to its renditions, and every refusal at the door, each at its exact limit."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from pipeline.settings import Settings
from pipeline.web import tickets
from tests.web.harness import Reply, Server, cli, embedded, serve
from tests.workers.harness import photo, wait_until

JPEG = photo(3, size=(640, 480))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("api")
    env = embedded(folder / "data", PHOTOPIPE_HTTP_BODY_TIMEOUT="1")
    with serve(env, folder / "serve.log") as running:
        yield running


def ticket(server: Server, user_id: int = 42, *args: str) -> str:
    out = cli(server.env, "ticket", "--user-id", str(user_id), *args)
    assert out.returncode == 0 and out.stdout.count("\n") == 1, out.stderr
    return out.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(server: Server, token: str, body: bytes, query: str = "") -> Reply:
    return server.request("POST", f"/v1/photos{query}", body, bearer(token))


def until_ready(server: Server, token: str, photo_id: str) -> Reply:
    found: list[Reply] = []

    def ready() -> bool:
        found[:] = [server.request("GET", f"/v1/photos/{photo_id}", headers=bearer(token))]
        return found[0].status == 200 and found[0].json()["status"] == "ready"

    wait_until(ready, 60, f"photo {photo_id} ready")
    return found[0]


def originals(server: Server) -> list[str]:
    """The uploads the store holds (renditions come and go with the background renders)."""
    folder = Path(server.env["PHOTOPIPE_DATA_DIR"]) / "objects" / "originals"
    return sorted(p.name for p in folder.glob("*") if p.is_file())


def error(reply: Reply) -> tuple[int, str]:
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return reply.status, body["error"]["code"]


def test_an_upload_is_followed_to_renditions_whose_bytes_are_the_pictures(
        server: Server) -> None:
    token = ticket(server)
    reply = upload(server, token, JPEG, "?filter=clarendon&strength=0.5&ladder=classic")
    assert reply.status == 202 and reply.headers["cache-control"] == "no-store"
    queued = reply.json()
    assert reply.headers["location"] == f"/v1/photos/{queued['photo_id']}"
    assert (queued["status"], queued["user_id"], queued["filter"], queued["strength"],
            queued["ladder"], queued["renditions"]) == ("queued", "42", "clarendon", 0.5,
                                                        "classic", [])
    assert isinstance(queued["photo_id"], str) and int(queued["photo_id"]) > 2**53
    ready = until_ready(server, token, queued["photo_id"])
    assert ready.headers["cache-control"] == "private, no-cache"
    document = ready.json()
    assert queued["placeholder"] is None  # not rendered yet
    assert set(document["placeholder"]) == {"thumbhash", "color", "aspect"}
    assert document["placeholder"]["aspect"] == 1.0  # the classic ladder's square
    assert [(r["name"], r["format"]) for r in document["renditions"]] == [
        ("sq612", "jpg"), ("sq306", "jpg"), ("sq150", "jpg")]
    for rendition in document["renditions"]:
        fetched = server.request("GET", rendition["url"])
        assert fetched.status == 200 and len(fetched.body) == rendition["bytes"]
        assert fetched.headers["cache-control"] == "public, max-age=31536000, immutable"
        with Image.open(io.BytesIO(fetched.body)) as picture:
            assert (picture.format, picture.size) == ("JPEG", (rendition["width"],
                                                               rendition["height"]))
    again = server.request("GET", f"/v1/photos/{queued['photo_id']}",
                           headers={**bearer(token), "If-None-Match": ready.headers["etag"]})
    assert again.status == 304 and again.body == b""


def test_a_rendition_url_works_only_as_signed_and_until_it_expires(server: Server) -> None:
    token = ticket(server)
    document = until_ready(server, token, upload(server, token, JPEG).json()["photo_id"]).json()
    url = document["renditions"][0]["url"]
    assert server.request("GET", url).status == 200
    path, _, query = url.partition("?")
    other = path.replace("w1080.jpg", "w640.jpg") + "?" + query
    assert error(server.request("GET", other)) == (404, "not_found")
    settings = Settings(database_url=f"sqlite:///{server.env['PHOTOPIPE_DATA_DIR']}/x.db")
    key = tickets.key(settings)  # the embedded default's own key, beside its database
    from pipeline.documents import Links

    links = Links(settings, None, key)  # type: ignore[arg-type]
    object_key = path.removeprefix("/v1/files/")
    past = int(time.time()) - 1
    expired = f"{path}?expires={past}&signature={links.signature(object_key, past)}"
    assert error(server.request("GET", expired)) == (404, "not_found")


def test_no_ticket_a_forged_one_or_an_expired_one_is_refused(server: Server) -> None:
    assert error(server.request("POST", "/v1/photos", JPEG)) == (401, "unauthorized")
    assert error(upload(server, "v1.e30.AAAA", JPEG)) == (401, "unauthorized")
    foreign = tickets.issue(42, settings=Settings(secret_key="another-key-0123456789"))
    assert error(upload(server, foreign, JPEG)) == (401, "unauthorized")
    short = ticket(server, 42, "--ttl", "1")
    time.sleep(1.1)
    reply = upload(server, short, JPEG)
    assert error(reply) == (401, "unauthorized")
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert error(server.request("GET", "/v1/photos/1", headers={"Authorization": "Basic x"})) \
        == (401, "unauthorized")


def test_a_user_never_reaches_another_users_photo(server: Server) -> None:
    alice, bob = ticket(server, 1001), ticket(server, 1002)
    photo_id = upload(server, alice, JPEG).json()["photo_id"]
    assert server.request("GET", f"/v1/photos/{photo_id}", headers=bearer(alice)).status == 200
    theirs = server.request("GET", f"/v1/photos/{photo_id}", headers=bearer(bob))
    missing = server.request("GET", "/v1/photos/123456789", headers=bearer(bob))
    assert error(theirs) == error(missing) == (404, "not_found")  # as if it did not exist
    assert error(server.request("GET", "/v1/photos/x1", headers=bearer(bob))) == (404,
                                                                                  "not_found")


def test_exactly_the_tickets_limit_is_accepted_and_one_byte_more_refused(
        server: Server) -> None:
    exact = ticket(server, 42, "--max-bytes", str(len(JPEG)))
    under = ticket(server, 42, "--max-bytes", str(len(JPEG) - 1))
    assert upload(server, exact, JPEG).status == 202
    before = originals(server)
    assert error(upload(server, under, JPEG)) == (413, "too_large")  # declared
    # streamed, chunked: no length to refuse by, so cut once past the limit
    chunked = server.raw(_chunked(under, JPEG))
    assert chunked.startswith(b"HTTP/1.1 413") and b'"too_large"' in chunked
    assert server.raw(_chunked(exact, JPEG)).startswith(b"HTTP/1.1 202")
    assert len(originals(server)) == len(before) + 1  # the refused ones left nothing


def _chunked(token: str, body: bytes, size: int = 1000, pieces: list[bytes] | None = None
             ) -> bytes:
    """A chunked POST of ``body`` in chunks of ``size`` (or exactly in ``pieces``)."""
    head = (f"POST /v1/photos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    if pieces is None:
        pieces = [body[i:i + size] for i in range(0, len(body), size)]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return head + chunks + b"0\r\n\r\n"


def test_the_first_bytes_are_sniffed_whole_when_they_come_in_several_chunks(
        server: Server) -> None:
    """A WebP's signature spans its first 12 bytes (RIFF, a size, WEBP): sent three bytes a
    chunk, all twelve are sniffed together; text sent so is refused as it is in one piece."""
    token = ticket(server)
    webp = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(webp, "WEBP")
    text = b"just some text, saved as holiday.webp\n" * 10
    for body, answer in ((webp.getvalue(), b"HTTP/1.1 202"), (JPEG, b"HTTP/1.1 202"),
                         (text, b"HTTP/1.1 415")):
        pieces = [body[i:i + 3] for i in range(0, 12, 3)] + [body[12:]]
        request = _chunked(token, body, pieces=pieces)
        head = request.index(b"\r\n\r\n") + 4
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(request[:head])
            # apart in time, so that the server reads them apart (a refusal may come, and
            # the connection close, before the last)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for piece in pieces:
                    time.sleep(0.05)
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sock.sendall(b"0\r\n\r\n")
            assert sock.recv(65536).startswith(answer)


def test_a_declared_length_over_the_limit_is_refused_before_the_body(server: Server) -> None:
    """The refusal comes with no byte of the body sent."""
    token = ticket(server, 42, "--max-bytes", "1000")
    head = (f"POST /v1/photos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Length: 1001\r\n\r\n").encode()
    assert server.raw(head).startswith(b"HTTP/1.1 413")


def test_a_text_file_named_like_a_jpeg_is_refused_with_the_pipelines_code(
        server: Server) -> None:
    token = ticket(server)
    before = originals(server)
    reply = upload(server, token, b"just some text, saved as holiday.jpg\n" * 10)
    assert error(reply) == (415, "unsupported_format")
    assert error(upload(server, token, b"")) == (422, "truncated")
    assert originals(server) == before


def test_a_client_that_stops_sending_mid_body_is_dropped(server: Server) -> None:
    """Declared 5000 bytes, sent 100, then silence: answered 408 after the body timeout."""
    token = ticket(server)
    head = (f"POST /v1/photos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Length: 5000\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + JPEG[:100])
        reply = b""  # the head and the body may come in separate segments: read to the end
        while chunk := sock.recv(65536):
            reply += chunk
            head_end = reply.find(b"\r\n\r\n")
            length = re.search(rb"content-length: (\d+)", reply[:head_end], re.IGNORECASE)
            if head_end >= 0 and length and len(reply) >= head_end + 4 + int(length[1]):
                break
    assert reply.startswith(b"HTTP/1.1 408") and b'"body_timeout"' in reply
    assert time.monotonic() - started < 10  # the timeout is 1 s here, not the client's


def test_bad_options_unknown_routes_and_methods_answer_json(server: Server) -> None:
    token = ticket(server)
    assert error(upload(server, token, JPEG, "?strength=2")) == (400, "bad_request")
    assert error(upload(server, token, JPEG, "?filter=nosuchlook")) == (400, "bad_request")
    assert error(upload(server, token, JPEG, "?colour=red")) == (400, "bad_request")
    assert error(server.request("GET", "/v1/nothing", headers=bearer(token))) == (404,
                                                                                 "not_found")
    assert error(server.request("PUT", "/v1/photos", JPEG, bearer(token))) == (
        405, "method_not_allowed")
    assert server.request("GET", "/healthz").json() == {"status": "ok"}
    assert server.request("GET", "/readyz").json() == {"status": "ready"}


def test_serve_refuses_to_start_without_a_key_outside_the_embedded_default(
        tmp_path: Path) -> None:
    env = embedded(tmp_path, PHOTOPIPE_DATABASE_URL="postgresql://postgres@127.0.0.1/test")
    out = cli(env, "serve", "--port", "1")
    assert out.returncode == 2 and "PHOTOPIPE_SECRET_KEY is not set" in out.stderr
    assert error(Reply(404, {"content-type": "application/json"},
                       b'{"error": {"code": "not_found", "message": ""}}')) == (404, "not_found")


def test_a_trailing_slash_is_not_redirected(server: Server) -> None:
    token = ticket(server)
    assert error(server.request("GET", "/v1/photos/", headers=bearer(token))) == (404,
                                                                                 "not_found")


def test_patch_renders_again_as_a_new_generation(server: Server) -> None:
    token = ticket(server, 51)
    photo_id = upload(server, token, JPEG).json()["photo_id"]
    first = until_ready(server, token, photo_id).json()
    reply = server.request("PATCH", f"/v1/photos/{photo_id}",
                           b'{"filter": "rise", "strength": 0.25}', bearer(token))
    assert reply.status == 202
    changed = reply.json()
    assert (changed["generation"], changed["filter"], changed["strength"],
            changed["ladder"]) == (first["generation"] + 1, "rise", 0.25, "default")
    assert changed["status"] in ("queued", "processing", "ready")
    done = until_ready(server, token, photo_id).json()
    assert done["generation"] == first["generation"] + 1
    assert {r["url"].split("?")[0] for r in done["renditions"]}.isdisjoint(
        {r["url"].split("?")[0] for r in first["renditions"]})  # new keys: caches stay true
    for body in (b'{"strength": 3}', b'{"filter": "nosuchlook"}', b'{"colour": 1}', b"[1]",
                 b"not json", b'{"strength": true}', b'{"ladder": {"a": 1}}'):
        assert error(server.request("PATCH", f"/v1/photos/{photo_id}", body,
                                    bearer(token))) == (400, "bad_request"), body
    other = ticket(server, 52)
    assert error(server.request("PATCH", f"/v1/photos/{photo_id}", b"{}", bearer(other))) == (
        404, "not_found")


def test_delete_removes_the_photo_its_renditions_and_its_original(server: Server) -> None:
    token, other = ticket(server, 61), ticket(server, 62)
    photo_id = upload(server, token, JPEG).json()["photo_id"]
    document = until_ready(server, token, photo_id).json()
    assert error(server.request("DELETE", f"/v1/photos/{photo_id}", headers=bearer(other))) == (
        404, "not_found")
    assert server.request("DELETE", f"/v1/photos/{photo_id}", headers=bearer(token)).status == 204
    assert error(server.request("GET", f"/v1/photos/{photo_id}", headers=bearer(token))) == (
        404, "not_found")
    assert photo_id not in originals(server)
    assert error(server.request("GET", document["renditions"][0]["url"])) == (404, "not_found")
    objects = Path(server.env["PHOTOPIPE_DATA_DIR"]) / "objects" / "photos" / photo_id
    assert not objects.exists() or not any(objects.rglob("*.*"))
    assert error(server.request("DELETE", f"/v1/photos/{photo_id}", headers=bearer(token))) == (
        404, "not_found")


def test_a_users_photos_page_newest_first_and_only_their_own(server: Server) -> None:
    token, other = ticket(server, 71), ticket(server, 72)
    ids = [upload(server, token, photo(i, size=(160, 120))).json()["photo_id"]
           for i in range(5)]
    upload(server, other, JPEG)
    newest = sorted(ids, key=int, reverse=True)
    first = server.request("GET", "/v1/users/71/photos?limit=3", headers=bearer(token)).json()
    assert [p["photo_id"] for p in first["photos"]] == newest[:3]
    assert first["next"] == newest[2]
    rest = server.request("GET", f"/v1/users/71/photos?limit=3&before={first['next']}",
                          headers=bearer(token)).json()
    assert [p["photo_id"] for p in rest["photos"]] == newest[3:] and rest["next"] is None
    assert error(server.request("GET", "/v1/users/71/photos", headers=bearer(other))) == (
        404, "not_found")
    huge = server.request("GET", f"/v1/users/71/photos?limit=2&before={2**64}",
                          headers=bearer(token)).json()
    assert [p["photo_id"] for p in huge["photos"]] == newest[:2]  # past every id: the newest
    for query in ("?limit=0", "?limit=101", "?before=x", "?limit=-1"):
        assert error(server.request("GET", f"/v1/users/71/photos{query}",
                                    headers=bearer(token))) == (400, "bad_request"), query


def test_an_idempotency_key_makes_a_retried_post_return_the_same_photo(server: Server) -> None:
    token, other = ticket(server, 81), ticket(server, 82)
    key = {"Idempotency-Key": "upload-2026-12-06-0001"}
    before = originals(server)
    first = server.request("POST", "/v1/photos", JPEG, {**bearer(token), **key})
    again = server.request("POST", "/v1/photos", JPEG, {**bearer(token), **key})
    assert first.status == again.status == 202
    assert first.json()["photo_id"] == again.json()["photo_id"]
    assert again.headers["location"] == first.headers["location"]
    assert len(originals(server)) == len(before) + 1  # the retry stored nothing
    fresh = server.request("POST", "/v1/photos", JPEG,
                           {**bearer(token), "Idempotency-Key": "another"})
    theirs = server.request("POST", "/v1/photos", JPEG, {**bearer(other), **key})
    assert len({first.json()["photo_id"], fresh.json()["photo_id"],
                theirs.json()["photo_id"]}) == 3  # keys are per user
    for bad in ("", "x" * 256, "caf\u00e9"):
        headers = {**bearer(token), "Idempotency-Key": bad}
        assert error(server.request("POST", "/v1/photos", JPEG, headers)) == (
            400, "bad_request"), bad


def test_cors_preflights_for_the_configured_origins_only(tmp_path: Path) -> None:
    env = embedded(tmp_path / "data", PHOTOPIPE_CORS_ORIGINS="https://app.example")
    with serve(env, tmp_path / "serve.log") as cors:
        asked = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, idempotency-key"}
        allowed = cors.request("OPTIONS", "/v1/photos", headers=asked)
        assert allowed.status == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert {"authorization", "idempotency-key"} <= {
            h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")}
        other = cors.request("OPTIONS", "/v1/photos",
                             headers={**asked, "Origin": "https://evil.example"})
        assert error(other) == (400, "bad_request")
        token = cli(env, "ticket", "--user-id", "9").stdout.strip()
        posted = cors.request("POST", "/v1/photos", JPEG,
                              {**bearer(token), "Origin": "https://app.example"})
        assert posted.status == 202
        exposed = posted.headers["access-control-expose-headers"].lower()
        assert "location" in exposed and "etag" in exposed


def test_uploads_per_minute_hold_across_serve_processes(tmp_path: Path) -> None:
    """Three a minute: two through one process, one through another, the fourth refused."""
    if 60 - time.time() % 60 < 15:  # not across a minute's edge (the database's clock)
        time.sleep(60 - time.time() % 60 + 0.5)
    env = embedded(tmp_path / "data", PHOTOPIPE_UPLOADS_PER_MINUTE="3")
    with serve(env, tmp_path / "a.log") as first, serve(env, tmp_path / "b.log") as second:
        token, other = (cli(env, "ticket", "--user-id", u).stdout.strip() for u in ("5", "6"))
        replies = [server.request("POST", "/v1/photos", JPEG, bearer(token))
                   for server in (first, second, first)]
        assert [r.status for r in replies] == [202, 202, 202]
        refused = second.request("POST", "/v1/photos", JPEG, bearer(token))
        assert error(refused) == (429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert first.request("POST", "/v1/photos", JPEG, bearer(other)).status == 202


def test_metrics_and_access_lines_sum_over_the_workers_processes(tmp_path: Path) -> None:
    """Two uvicorn processes: /metrics, answered by either, counts every request of both."""
    env = embedded(tmp_path / "data", PHOTOPIPE_LOG_FORMAT="json")
    log = tmp_path / "serve.log"
    with serve(env, log, "--workers", "2") as two:
        token = cli(env, "ticket", "--user-id", "3").stdout.strip()
        for _ in range(6):
            assert two.request("POST", "/v1/photos", JPEG, bearer(token)).status == 202
        assert two.request("GET", "/v1/nothing").status == 404
        families = _scrape(two.request("GET", "/metrics").body.decode())
        assert families[("photopipe_http_requests_total",
                         (("method", "POST"), ("route", "/v1/photos"), ("status", "202")))] == 6
        assert families[("photopipe_http_requests_total",
                         (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
        assert families[("photopipe_http_received_bytes_total", ())] >= 6 * len(JPEG)
        assert families[("photopipe_http_uploads_in_progress", ())] == 0
        assert families[("photopipe_http_request_seconds_count",
                         (("route", "/v1/photos"),))] == 6
    lines = [json.loads(line) for line in log.read_text().splitlines()
             if line.startswith("{") and '"route"' in line]
    posts = [line for line in lines if line["method"] == "POST"]
    assert len(posts) == 6 and {p["status"] for p in posts} == {202}
    assert all(p["route"] == "/v1/photos" and p["bytes_received"] == len(JPEG) and
               p["seconds"] > 0 for p in posts)


def _scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_unicode_digits_are_not_ids(server: Server) -> None:
    """"³".isdigit() is true, and int("³") raises: found by the fuzzing (a 500)."""
    token = ticket(server, 42)
    assert error(server.request("GET", "/v1/photos/%C2%B3", headers=bearer(token))) == (
        404, "not_found")
    assert error(server.request("GET", "/v1/users/42/photos?before=%C2%B3",
                                headers=bearer(token))) == (400, "bad_request")
    assert error(server.request("GET", "/v1/users/42/photos?limit=%D9%A3",
                                headers=bearer(token))) == (400, "bad_request")
    assert error(server.request("GET", "/v1/files/photos/1/w1.jpg?expires=%C2%B3&signature=x")
                 ) == (404, "not_found")


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_serve_parses_http_with_the_parser_asked_for(tmp_path: Path, parser: str) -> None:
    """httptools (C) by default, h11 (pure Python) with ``--http h11``; both answer alike."""
    env = embedded(tmp_path / "data")
    extra = () if parser == "httptools" else ("--http", "h11")
    with serve(env, tmp_path / "serve.log", *extra) as running:
        assert upload(running, ticket(running), JPEG).status == 202
        maps = Path(f"/proc/{running.process.pid}/maps").read_text()
    assert ("httptools/parser" in maps) == (parser == "httptools")
