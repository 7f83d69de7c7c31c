"""Webhooks on the production path: RabbitMQ, PostgreSQL, S3 over HTTP, a worker telling the
endings, `serve` taking uploads and deletions; a receiver of the test's own that fails its first
two deliveries and times out the third. Every photo's ending arrives, every delivery's signature
verifies with the `standardwebhooks` package, and the retries of one ending carry one
webhook-id."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from pipeline.webhooks import post
from tests.faults.harness import deploy
from tests.services import S3Server
from tests.web.harness import cli, serve
from tests.workers.harness import photo, wait_until

SECRET = "whsec_" + base64.b64encode(b"the web tier's webhook secret...").decode()
TIMEOUT = 1.0


@dataclass
class Receiver:
    """A web tier's webhook endpoint: 500, 500, a reply too late, then 200s."""

    port: int = 0
    deliveries: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            number = len(self.deliveries) + 1
            status = 500 if number <= 2 else 200
            self.deliveries.append((headers, body, 0 if number == 3 else status))
        if number == 3:
            time.sleep(TIMEOUT + 1)  # the sender has given up on this one by now
        return status

    def delivered(self) -> dict[tuple[str, str], list[str]]:
        """(photo id, event) -> the webhook-ids of its deliveries answered 2xx."""
        found: dict[tuple[str, str], list[str]] = defaultdict(list)
        with self.lock:
            for headers, body, status in self.deliveries:
                if status == 200:
                    payload = json.loads(body)
                    found[(payload["data"]["photo_id"], payload["type"])].append(
                        headers["webhook-id"])
        return found


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            status = receiver.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("location", "/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


def test_every_ending_arrives_signed_and_retries_keep_their_id(
        amqp_url: str, postgres_url: str, moto: S3Server, tmp_path: Path,
        receiver: Receiver) -> None:
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto,
                        PHOTOPIPE_SECRET_KEY="production-key-0123456789",
                        PHOTOPIPE_WEBHOOK_URL=f"http://127.0.0.1:{receiver.port}/hooks",
                        PHOTOPIPE_WEBHOOK_SECRET=SECRET,
                        PHOTOPIPE_WEBHOOK_TIMEOUT=str(TIMEOUT))
    try:
        deployment.start_worker()
        token = cli(deployment.env, "ticket", "--user-id", "9").stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        with serve(deployment.env, tmp_path / "serve.log") as server:
            good = [server.request("POST", "/v1/photos?ladder=classic", photo(n), auth)
                    .json()["photo_id"] for n in range(3)]
            broken = server.request("POST", "/v1/photos", b"\xff\xd8\xff\xe0" + b"\x00" * 500,
                                    auth).json()["photo_id"]
            wanted = {(p, "photo.ready") for p in good} | {(broken, "photo.failed")}
            wait_until(lambda: wanted <= set(receiver.delivered()), 120,
                       "every ending told")
            assert server.request("DELETE", f"/v1/photos/{good[0]}", None, auth).status == 204
            wanted.add((good[0], "photo.deleted"))
            wait_until(lambda: wanted <= set(receiver.delivered()), 60, "the deletion told")
    finally:
        deployment.stop_all()
        deployment.db.close()
    verifier = Verifier(SECRET)
    ids: dict[str, set[str]] = defaultdict(set)
    for headers, body, _ in receiver.deliveries:
        payload = verifier.verify(body, headers)  # raises on a bad signature
        ids[headers["webhook-id"]].add(f"{payload['data']['photo_id']} {payload['type']}")
    assert all(len(events) == 1 for events in ids.values())  # one id, one ending
    # The two 500s and the timeout were each tried again, under their ids, until a 200.
    failed = [(n, h["webhook-id"]) for n, (h, _, s) in enumerate(receiver.deliveries)
              if s != 200]
    assert len(failed) == 3
    for number, webhook_id in failed:
        assert any(h["webhook-id"] == webhook_id and s == 200
                   for h, _, s in receiver.deliveries[number + 1:]), webhook_id
    delivered = receiver.delivered()
    assert set(delivered) == wanted  # nothing else told: no ending twice, none made up
    assert all(len(set(found)) == 1 for found in delivered.values())
    ready = json.loads(next(b for h, b, s in receiver.deliveries
                            if s == 200 and json.loads(b)["type"] == "photo.ready"))
    assert ready["data"]["status"] == "ready" and len(ready["data"]["renditions"]) == 3
    assert ready["data"]["placeholder"]["aspect"] == 1.0  # the classic ladder's square
    assert ready["data"]["renditions"][0]["url"].startswith(moto.endpoint)


def test_a_redirect_is_an_answer_not_followed(receiver: Receiver) -> None:
    """The sender's own HTTP: a 3xx is a failure to retry (a POST is never turned into a GET
    elsewhere), a 2xx is the receiver's, and a receiver too slow is a timeout."""
    assert post(f"http://127.0.0.1:{receiver.port}/", b"{}", {}, 5) == 500  # its first answer
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{receiver.port}/", method="GET")
    from pipeline import webhooks

    with pytest.raises(urllib.error.HTTPError) as caught:
        webhooks._OPENER.open(request, timeout=5)
    assert caught.value.code == 302
    post(f"http://127.0.0.1:{receiver.port}/", b"{}", {}, 5)  # the second 500
    with pytest.raises(TimeoutError):
        post(f"http://127.0.0.1:{receiver.port}/", b"{}", {}, TIMEOUT)  # the third: too late
