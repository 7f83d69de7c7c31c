"""Resumable uploads (tus 1.0.0) on a real `photopipe serve` (the embedded default): a real tus
client (tuspy) in small chunks, and every refusal of the protocol at its exact limit."""

from __future__ import annotations

import base64
import io
import socket
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from PIL import Image
from tusclient import client as tus

from tests.web.harness import Reply, Server, cli, embedded, serve
from tests.web.test_api import bearer, error, ticket, until_ready
from tests.workers.harness import photo

JPEG = photo(4, size=(640, 480))
TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("tus")
    env = embedded(folder / "data", PHOTOPIPE_HTTP_BODY_TIMEOUT="1",
                   PHOTOPIPE_CORS_ORIGINS="https://app.example",
                   PHOTOPIPE_UPLOAD_EXPIRES="3600")
    with serve(env, folder / "serve.log") as running:
        yield running


def metadata(**options: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in options.items())


def create(server: Server, token: str, length: int, **options: str) -> str:
    reply = server.request("POST", "/v1/uploads", b"", {
        **bearer(token), **TUS, "Upload-Length": str(length),
        "Upload-Metadata": metadata(**options)})
    assert reply.status == 201, reply.body
    assert reply.headers["tus-resumable"] == "1.0.0"
    return reply.headers["location"]


def patch(server: Server, token: str, location: str, offset: int, body: bytes,
          **headers: str) -> Reply:
    return server.request("PATCH", location, body, {**bearer(token), **CHUNK,
                                                    "Upload-Offset": str(offset), **headers})


def head(server: Server, token: str, location: str) -> Reply:
    return server.request("HEAD", location, None, {**bearer(token), **TUS})


def objects(server: Server, prefix: str) -> list[str]:
    root = Path(server.env["PHOTOPIPE_DATA_DIR"]) / "objects"
    return sorted(p.relative_to(root).as_posix() for p in (root / prefix).rglob("*")
                  if p.is_file())


def test_a_tus_client_uploads_in_small_chunks_and_the_photo_renders(server: Server) -> None:
    token = ticket(server, 31)
    client = tus.TusClient(f"http://127.0.0.1:{server.port}/v1/uploads", headers=bearer(token))
    uploader = client.uploader(file_stream=io.BytesIO(JPEG), chunk_size=4096,
                               metadata={"filter": "clarendon", "ladder": "classic",
                                         "strength": "0.5", "filename": "beach.jpg"})
    uploader.upload()
    assert uploader.offset == len(JPEG)
    assert uploader.url is not None
    done = head(server, token, uploader.url.split(str(server.port), 1)[1])
    assert done.status == 200 and done.body == b""
    assert (done.headers["upload-offset"], done.headers["upload-length"]) == \
        (str(len(JPEG)), str(len(JPEG)))
    assert done.headers["cache-control"] == "no-store"
    expires = parsedate_to_datetime(done.headers["upload-expires"]).timestamp()
    assert 3500 < expires - time.time() <= 3600
    document = until_ready(server, token, done.headers["photopipe-photo-id"]).json()
    assert (document["user_id"], document["filter"], document["ladder"],
            document["strength"]) == ("31", "clarendon", "classic", 0.5)
    first = server.request("GET", document["renditions"][0]["url"])
    with Image.open(io.BytesIO(first.body)) as picture:
        assert picture.size == (480, 480)
    assert objects(server, "uploads") == []  # the chunks were gathered and removed


def test_discovery_says_what_is_spoken(server: Server) -> None:
    reply = server.request("OPTIONS", "/v1/uploads")
    assert reply.status == 204
    assert (reply.headers["tus-version"], reply.headers["tus-resumable"]) == ("1.0.0", "1.0.0")
    assert set(reply.headers["tus-extension"].split(",")) == {"creation", "termination",
                                                              "expiration"}
    assert reply.headers["tus-max-size"] == str(50 * 1024 * 1024)


def test_an_upload_s_length_is_held_to_the_ticket_s_limit(server: Server) -> None:
    token = ticket(server, 32, "--max-bytes", "1000")
    create(server, token, 1000)
    over = server.request("POST", "/v1/uploads", b"", {**bearer(token), **TUS,
                                                       "Upload-Length": "1001"})
    assert error(over) == (413, "too_large") and over.headers["tus-resumable"] == "1.0.0"
    for bad in ("", "-1", "1e3", "\u00b2"):
        reply = server.request("POST", "/v1/uploads", b"", {**bearer(token), **TUS,
                                                            "Upload-Length": bad})
        assert error(reply) == (400, "bad_request"), bad


def test_a_chunk_may_not_run_past_the_upload_s_length(server: Server) -> None:
    token = ticket(server, 33)
    location = create(server, token, 1000)
    assert patch(server, token, location, 0, JPEG[:400]).status == 204
    declared = server.raw(  # refused on its Content-Length, before a byte of the body
        f"PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        "Upload-Offset: 400\r\nContent-Length: 601\r\n\r\n".encode())
    assert declared.startswith(b"HTTP/1.1 413 ")
    streamed = server.raw(  # no declared length: cut where it runs past
        f"PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        "Upload-Offset: 400\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"259\r\n" + b"x" * 601 + b"\r\n0\r\n\r\n")
    assert streamed.startswith(b"HTTP/1.1 413 ")
    assert head(server, token, location).headers["upload-offset"] == "400"
    done = patch(server, token, location, 400, JPEG[400:1000])  # exactly the rest
    assert done.status == 204 and done.headers["upload-offset"] == "1000"
    photo_id = done.headers["photopipe-photo-id"]
    assert location.endswith(f"/{photo_id}")
    after = patch(server, token, location, 1000, b"more")  # a PATCH after completion
    assert error(after) == (413, "too_large")
    again = patch(server, token, location, 1000, b"")  # a retried last request's echo
    assert again.status == 204 and again.headers["photopipe-photo-id"] == photo_id


def test_a_chunk_for_the_wrong_offset_is_409_with_nothing_read(server: Server) -> None:
    token = ticket(server, 34)
    location = create(server, token, len(JPEG))
    assert patch(server, token, location, 0, JPEG[:100]).status == 204
    for wrong in (0, 99, 101):
        reply = patch(server, token, location, wrong, JPEG[wrong:wrong + 100])
        assert error(reply) == (409, "offset_mismatch"), wrong
    assert head(server, token, location).headers["upload-offset"] == "100"
    assert error(patch(server, token, location, 100, b"", **{"Upload-Offset": "x"})) == \
        (400, "bad_request")


def test_a_text_file_is_refused_at_its_first_chunk(server: Server) -> None:
    token = ticket(server, 35)
    location = create(server, token, 100)
    reply = patch(server, token, location, 0, b"just some text, renamed .jpg")
    assert error(reply) == (415, "unsupported_format")
    assert head(server, token, location).headers["upload-offset"] == "0"
    assert objects(server, f"uploads/{location.rsplit('/', 1)[1]}") == []


def test_the_protocol_s_own_refusals(server: Server) -> None:
    token = ticket(server, 36)
    location = create(server, token, len(JPEG))
    unversioned = server.request("PATCH", location, JPEG[:10], {
        **bearer(token), "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0"})
    assert error(unversioned) == (412, "tus_version")
    assert unversioned.headers["tus-version"] == "1.0.0"
    wrong_type = patch(server, token, location, 0, JPEG[:10],
                       **{"Content-Type": "application/octet-stream"})
    assert error(wrong_type) == (415, "bad_content_type")
    bad = server.request("POST", "/v1/uploads", b"", {
        **bearer(token), **TUS, "Upload-Length": "10", "Upload-Metadata": "filter !!"})
    assert error(bad) == (400, "bad_request")
    unknown = server.request("POST", "/v1/uploads", b"", {
        **bearer(token), **TUS, "Upload-Length": "10",
        "Upload-Metadata": metadata(filter="no-such-look")})
    assert error(unknown) == (400, "bad_request")


def test_tickets_guard_every_upload(server: Server) -> None:
    alice, bob = ticket(server, 37), ticket(server, 38)
    location = create(server, alice, len(JPEG))
    assert error(server.request("POST", "/v1/uploads", b"", {**TUS, "Upload-Length": "9"})) \
        == (401, "unauthorized")
    expired = ticket(server, 37, "--ttl", "1")
    time.sleep(1.1)
    assert error(patch(server, expired, location, 0, JPEG[:100])) == (401, "unauthorized")
    foreign = cli({**server.env, "PHOTOPIPE_SECRET_KEY": "another-key-0123456789"},
                  "ticket", "--user-id", "37").stdout.strip()
    assert head(server, foreign, location).status == 401  # a HEAD answer has no body
    assert error(patch(server, bob, location, 0, JPEG[:100])) == (404, "not_found")
    assert head(server, bob, location).status == 404
    gone = server.request("DELETE", location, None, {**bearer(bob), **TUS})
    assert error(gone) == (404, "not_found")
    assert head(server, alice, location).headers["upload-offset"] == "0"  # untouched


def test_an_abandoned_upload_is_gone_with_its_chunks(server: Server) -> None:
    token = ticket(server, 39)
    location = create(server, token, len(JPEG))
    assert patch(server, token, location, 0, JPEG[:5000]).status == 204
    assert objects(server, f"uploads/{location.rsplit('/', 1)[1]}") != []
    reply = server.request("DELETE", location, None, {**bearer(token), **TUS})
    assert reply.status == 204 and reply.headers["tus-resumable"] == "1.0.0"
    assert head(server, token, location).status == 404
    assert error(patch(server, token, location, 5000, JPEG[5000:])) == (404, "not_found")
    assert objects(server, f"uploads/{location.rsplit('/', 1)[1]}") == []


def test_a_client_that_stops_mid_chunk_is_dropped_and_nothing_counts(server: Server) -> None:
    token = ticket(server, 40)
    location = create(server, token, len(JPEG))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
                     "\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream"
                     f"\r\nUpload-Offset: 0\r\nContent-Length: {len(JPEG)}\r\n\r\n".encode()
                     + JPEG[:1000])
        reply = sock.recv(65536)  # the body timeout is 1 s
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert head(server, token, location).headers["upload-offset"] == "0"


def test_browsers_see_the_tus_headers(server: Server) -> None:
    token = ticket(server, 41)
    preflight = server.request("OPTIONS", "/v1/uploads/1", None, {
        "Origin": "https://app.example", "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization,tus-resumable,upload-offset,"
                                          "content-type"})
    assert preflight.status == 200
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    reply = server.request("POST", "/v1/uploads", b"", {
        **bearer(token), **TUS, "Upload-Length": "10", "Origin": "https://app.example"})
    exposed = {h.strip().lower() for h in reply.headers["access-control-expose-headers"]
               .split(",")}
    assert {"location", "upload-offset", "tus-resumable", "photopipe-photo-id",
            "upload-expires"} <= exposed
