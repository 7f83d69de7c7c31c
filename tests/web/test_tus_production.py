"""Resumable uploads on the production path: two `serve` processes over RabbitMQ, sharded
PostgreSQL (16 logical shards over three servers, the third behind pgbouncer) and an S3 server
over HTTP, a worker rendering. 50 photos go up with tus in chunks, every other chunk to the
other process, one of them (larger than an S3 part) as a multipart upload; one `serve` is
killed in the middle of a chunk and started again; a real tus client (tuspy) sends some of
them. Every photo ends `ready`, its original byte for byte what was sent, its renditions the
right pictures, and no chunk or multipart upload is left behind."""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image
from tusclient import client as tus

from pipeline.jobs import original_key
from pipeline.metadata.shards.store import ShardedMetadata
from pipeline.storage import PART_BYTES
from pipeline.uploads import State
from tests.faults.harness import FAST_RETRIES
from tests.services import S3Server
from tests.web.harness import Server, cli, serve
from tests.workers.harness import Deployment, wait_until

PHOTOS = 50
TUSPY = range(0, 5)  # sent by tuspy, to one server
BIG = PHOTOS - 1  # larger than an S3 part: a multipart upload
KILLED_AT = 25  # the photo during whose second chunk one server dies
CHUNK, BIG_CHUNK = 8 * 1024, 1024 * 1024


@pytest.fixture
def deployment(amqp_url: str, shard_urls: list[str], moto: S3Server,
               tmp_path: Path) -> Iterator[Deployment]:
    store = moto.store()
    env = {**os.environ, **moto.env(), **FAST_RETRIES, "PHOTOPIPE_BROKER_URL": amqp_url,
           "PHOTOPIPE_DATABASE_URL": shard_urls[0],
           "PHOTOPIPE_SECRET_KEY": "production-key-0123456789",
           "PHOTOPIPE_STORAGE_URL": f"s3://{store.bucket}/{store.prefix.rstrip('/')}"}
    db = ShardedMetadata(shard_urls[0], refresh=0.5)
    found = Deployment(env, store, cast(Any, db), tmp_path)
    found.cli("shards", "init", "--logical", "16", *shard_urls)
    found.cli("db", "upgrade")
    yield found
    found.stop_all()
    db.close()


def picture(index: int) -> bytes:
    """A picture of a colour of its own (with grain); the big one is grain at full size."""
    rng = np.random.default_rng(index)
    colour = np.array([(index * 67) % 200 + 28, (index * 131) % 200 + 28,
                       (index * 29) % 200 + 28], dtype=np.float32)
    size, grain = ((2000, 3000), 40) if index == BIG else ((360, 480), 6)
    pixels = np.clip(colour + rng.normal(0, grain, (*size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95 if index == BIG else 90)
    return buffer.getvalue()


def mean_colour(data: bytes) -> Any:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB").resize((32, 32)), dtype=np.float32).mean((0, 1))


@contextlib.contextmanager
def connection(server: Server) -> Iterator[http.client.HTTPConnection]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        yield conn
    finally:
        conn.close()


def call(server: Server, method: str, path: str, token: str, body: bytes = b"", *,
         headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    with connection(server) as conn:
        conn.request(method, path, body, {"Authorization": f"Bearer {token}",
                                          "Tus-Resumable": "1.0.0", **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response


def send(servers: list[Server], token: str, data: bytes, chunk: int) -> str:
    """One upload, its chunks alternating between the servers; the photo id."""
    created = call(servers[0], "POST", "/v1/uploads", token, b"",
                   headers={"Upload-Length": str(len(data))})
    assert created.status == 201
    location = str(created.getheader("Location"))
    reply = None
    for number, start in enumerate(range(0, len(data), chunk)):
        reply = call(servers[number % 2], "PATCH", location, token, data[start:start + chunk],
                     headers={"Upload-Offset": str(start),
                      "Content-Type": "application/offset+octet-stream"})
        assert reply.status == 204, reply.status
    assert reply is not None
    return str(reply.getheader("Photopipe-Photo-Id"))


def die_mid_chunk(servers: list[Server], token: str, data: bytes) -> tuple[str, int]:
    """Start an upload, send its first chunk, then half of the second to servers[0] and kill
    that server; the upload's location and the offset the other server then reports."""
    created = call(servers[1], "POST", "/v1/uploads", token, b"",
                   headers={"Upload-Length": str(len(data))})
    location = str(created.getheader("Location"))
    assert call(servers[1], "PATCH", location, token, data[:CHUNK], headers={
        "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}).status == 204
    with socket.create_connection(("127.0.0.1", servers[0].port), timeout=10) as sock:
        sock.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
                     "\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream"
                     f"\r\nUpload-Offset: {CHUNK}\r\nContent-Length: {CHUNK}\r\n\r\n".encode()
                     + data[CHUNK:CHUNK + CHUNK // 2])
        servers[0].kill()
    head = call(servers[1], "HEAD", location, token)
    return location, int(str(head.getheader("Upload-Offset")))


def test_fifty_uploads_across_two_servers_one_killed_mid_chunk(deployment: Deployment,
                                                                 tmp_path: Path) -> None:
    deployment.start_worker()
    tokens = [cli(deployment.env, "ticket", "--user-id", str(user)).stdout.strip()
              for user in range(77, 82)]  # users on several shards
    token = tokens[0]
    data = {index: picture(index) for index in range(PHOTOS)}
    assert len(data[BIG]) > PART_BYTES
    ids: dict[int, str] = {}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(serve(deployment.env, tmp_path / f"{name}.log"))
                   for name in ("a", "b")]
        client = tus.TusClient(f"http://127.0.0.1:{servers[0].port}/v1/uploads",
                               headers={"Authorization": f"Bearer {token}"})
        for index in TUSPY:
            uploader = client.uploader(file_stream=io.BytesIO(data[index]), chunk_size=CHUNK)
            uploader.upload()
            assert uploader.url is not None
            ids[index] = str(call(servers[1], "HEAD", uploader.url.split(
                str(servers[0].port), 1)[1], token).getheader("Photopipe-Photo-Id"))
        for index in range(len(TUSPY), PHOTOS):
            if index == KILLED_AT:
                location, offset = die_mid_chunk(servers, token, data[index])
                assert offset == CHUNK  # nothing of the half chunk counts
                servers = [servers[1], stack.enter_context(
                    serve(deployment.env, tmp_path / "a-again.log"))]
                reply = call(servers[1], "PATCH", location, token, data[index][offset:], headers={
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream"})
                assert reply.status == 204
                ids[index] = str(reply.getheader("Photopipe-Photo-Id"))
                continue
            ids[index] = send(servers, tokens[index % 5], data[index],
                              BIG_CHUNK if index == BIG else CHUNK)
        assert len(set(ids.values())) == PHOTOS

        def all_ready() -> bool:
            counts = deployment.db.counts()
            return counts["ready"] == PHOTOS and counts["queued"] + counts["processing"] == 0
        wait_until(all_ready, 240, f"{PHOTOS} photos ready")
        documents = {index: _document(servers[index % 2], tokens[index % 5]
                                      if index in range(len(TUSPY), PHOTOS) and
                                      index != KILLED_AT else token, photo_id)
                     for index, photo_id in ids.items()}
    shard_map = cast(ShardedMetadata, deployment.db).shard_map()
    assert shard_map is not None
    expected = np.stack([mean_colour(data[index]) for index in range(PHOTOS)])
    for index, document in documents.items():
        assert document["status"] == "ready"
        assert deployment.store.get(original_key(int(ids[index]))) == data[index]
        largest = _fetch(document["renditions"][0]["url"])
        found = np.abs(expected - mean_colour(largest)).sum(axis=1)
        assert int(found.argmin()) == index, (index, found.min(), found[index])
    big = deployment.db.get_upload(int(ids[BIG]))
    assert big is not None and [size for _, _, size in State.load(big.state).parts] == [
        5 * BIG_CHUNK, len(data[BIG]) - 5 * BIG_CHUNK]  # a part as soon as 5 MiB are in
    assert len({shard_map.of_photo(int(i)) for i in ids.values()}) == 5
    assert list(deployment.store.list("uploads/")) == []
    pending = deployment.store.s3.list_multipart_uploads(Bucket=deployment.store.bucket)
    assert pending.get("Uploads", []) == []


def _document(server: Server, token: str, photo_id: str) -> dict[str, Any]:
    reply = server.request("GET", f"/v1/photos/{photo_id}",
                           headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200
    document: dict[str, Any] = reply.json()
    return document


def _fetch(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as fetched:
        body: bytes = fetched.read()
        return body
