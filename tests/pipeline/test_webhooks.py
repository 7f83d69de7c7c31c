"""pipeline.webhooks: endings told to the web tier, signed per Standard Webhooks, retried under
one webhook-id, in generation order."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from pipeline.errors import ConfigurationError
from pipeline.metadata import NewPhoto, RenditionRow
from pipeline.metadata.sqlite import SqliteMetadata
from pipeline.records import Job, SourceInfo
from pipeline.settings import Settings
from pipeline.webhooks import Sender

SECRET = "whsec_" + base64.b64encode(b"a webhook secret of 32 bytes....").decode()
SETTINGS = Settings(webhook_url="http://web.example/hooks", webhook_secret=SECRET,
                    retry_backoff=0.2, retry_backoff_max=0.2, webhook_timeout=1)
SOURCE = SourceInfo("JPEG", 640, 480, 30_000, 1, 1)


@dataclass
class Receiver:
    """Answers each delivery with the next of ``answers`` (then 200); an exception is raised."""

    answers: list[int | Exception] = field(default_factory=list)
    got: list[tuple[str, bytes, dict[str, str], float]] = field(default_factory=list)

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        self.got.append((url, body, headers, timeout))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return answer

    def events(self) -> list[tuple[str, int, str]]:
        return [(json.loads(b)["type"], json.loads(b)["data"]["generation"], h["webhook-id"])
                for _, b, h, _ in self.got]


@pytest.fixture
def db(tmp_path: Path) -> SqliteMetadata:
    return SqliteMetadata(str(tmp_path / "meta.db"))


def sender(db: SqliteMetadata, receiver: Receiver, **changes: object) -> Sender:
    settings = Settings(**{**SETTINGS.__dict__, **changes})
    return Sender(db, settings, lambda key: f"https://cdn.example/{key}", post=receiver)


def ready(db: SqliteMetadata, photo_id: int, generation: int = 1) -> None:
    db.create(NewPhoto(photo_id, f"originals/{photo_id}", "classic", "clarendon", 0.5, 42))
    lease = db.start(Job(photo_id, generation)).lease
    db.finish(photo_id, lease, SOURCE, [RenditionRow(
        "sq612", "jpg", f"photos/{photo_id}/{generation}.{lease}/sq612.jpg", 612, 612, 9000)],
        notify=True)


def test_an_ending_is_posted_signed_with_the_photo_s_document(db: SqliteMetadata) -> None:
    receiver = Receiver()
    ready(db, 7)
    assert sender(db, receiver).round() == {"delivered": 1}
    ((url, body, headers, timeout),) = receiver.got
    assert (url, timeout) == ("http://web.example/hooks", 1)
    payload = Verifier(SECRET).verify(body, headers)  # the reference implementation
    assert payload["type"] == "photo.ready" and payload["timestamp"].endswith("Z")
    assert payload["data"]["photo_id"] == "7" and payload["data"]["user_id"] == "42"
    assert (payload["data"]["status"], payload["data"]["generation"]) == ("ready", 1)
    assert payload["data"]["renditions"][0]["url"] == \
        "https://cdn.example/photos/7/1.1/sq612.jpg"
    assert headers["webhook-id"] == "msg_7_1_ready"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    # By hand, as the specification says: HMAC-SHA256 over id.timestamp.body with the
    # secret's bytes (base64 after the whsec_ prefix).
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert sender(db, receiver).round() == {}  # delivered once


def test_failures_are_retried_under_the_same_id_and_a_410_ends_it(db: SqliteMetadata) -> None:
    receiver = Receiver([500, TimeoutError("timed out"), 302, 410])
    ready(db, 8)
    hooks = sender(db, receiver)
    for _ in range(4):
        hooks.round()
        time.sleep(0.35)  # past the backoff; the four tries span over a second
    assert hooks.round() == {}  # 410: not called again for that event
    assert [h["webhook-id"] for _, _, h, _ in receiver.got] == ["msg_8_1_ready"] * 4
    # signed anew: the signature covers the try's timestamp (whole seconds), and the first and
    # last tries are over a second apart (at 0.25 s they could all fall in one second)
    first, *_, last = receiver.got
    assert int(last[2]["webhook-timestamp"]) > int(first[2]["webhook-timestamp"])
    assert first[2]["webhook-signature"] != last[2]["webhook-signature"]


def test_a_failed_delivery_waits_its_backoff(db: SqliteMetadata) -> None:
    receiver = Receiver([503])
    ready(db, 9)
    hooks = sender(db, receiver, retry_backoff=30.0, retry_backoff_max=30.0)
    assert hooks.round() == {"retry": 1}
    assert hooks.round() == {}  # not due for 30 s
    assert len(receiver.got) == 1


def test_past_its_patience_a_webhook_is_given_up(db: SqliteMetadata) -> None:
    receiver = Receiver()
    ready(db, 10)
    time.sleep(0.05)
    assert sender(db, receiver, webhook_patience=0.01).round() == {"given_up": 1}
    assert receiver.got == [] and sender(db, receiver).round() == {}


def test_an_older_generation_is_never_told_after_a_newer_one(db: SqliteMetadata) -> None:
    receiver = Receiver([500])
    ready(db, 11)
    hooks = sender(db, receiver)
    assert hooks.round() == {"retry": 1}  # generation 1's ready: failed once
    db.create(NewPhoto(11, "originals/11", user_id=42))  # generation 2, rendered and failed
    db.fail(11, db.start(Job(11, 2)).lease, "corrupt", "broken", notify=True)
    assert hooks.round() == {}  # generation 2 waits behind generation 1's retry
    time.sleep(0.25)
    assert hooks.round() == {"overtaken": 1}  # 1's ready no longer what the photo is
    assert hooks.round() == {"delivered": 1}
    db.delete(11, notify=True)
    assert hooks.round() == {"delivered": 1}
    assert [(e, g) for e, g, _ in receiver.events()] == [
        ("photo.ready", 1), ("photo.failed", 2), ("photo.deleted", 2)]
    deleted = json.loads(receiver.got[-1][1])["data"]
    assert deleted == {"photo_id": "11", "user_id": "42", "generation": 2}


def test_endings_are_written_only_with_a_webhook_url(tmp_path: Path) -> None:
    from pipeline.jobs import process
    from pipeline.storage.memory import MemoryStore
    from tests.workers.harness import photo

    for url, expected in ((None, 0), ("http://web.example/hooks", 1)):
        db = SqliteMetadata(str(tmp_path / f"{expected}.db"))
        store = MemoryStore()
        store.put("originals/5", photo(5), "application/octet-stream")
        db.create(NewPhoto(5, "originals/5"))
        settings = Settings(webhook_url=url, webhook_secret=SECRET)
        assert process(Job(5, 1), store, db, settings).status == "ready"
        assert len(db.due_webhooks(10, 30)) == expected


@pytest.mark.parametrize("secret", [None, "", "whsec_"])
def test_webhooks_without_a_usable_secret_refuse_to_start(db: SqliteMetadata,
                                                          secret: str | None) -> None:
    with pytest.raises(ConfigurationError, match="PHOTOPIPE_WEBHOOK_SECRET"):
        sender(db, Receiver(), webhook_secret=secret)
