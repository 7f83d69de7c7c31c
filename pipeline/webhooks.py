"""Webhooks: the ending of every photo (``photo.ready``, ``photo.failed``, ``photo.deleted``)
told to the web tier, signed per Standard Webhooks.

The ending's webhook is written in the transaction that records the ending (an outbox, as for
jobs), so none is lost and none is told of an ending that did not commit. The senders (a thread
in every worker; on the embedded default, in ``serve``) take the due ones, the oldest left of
each photo only, so an older generation's ending is never told after a newer one's. A delivery
that answers anything but 2xx, or not within ``PHOTOPIPE_WEBHOOK_TIMEOUT``, is retried with the
jobs' backoff for ``PHOTOPIPE_WEBHOOK_PATIENCE``, under the same ``webhook-id`` every time, so
a receiver drops duplicates; a 410 is not retried. An ending a newer one has overtaken before it
was told (a ready photo re-rendered or deleted since) is dropped: the newer one is told, with
the photo as it is. The payload is the photo's document as the API serves it, its rendition
URLs signed at the delivery.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook as Signer

from pipeline.documents import document
from pipeline.errors import ConfigurationError, PhotopipeError
from pipeline.jobs import backoff
from pipeline.metadata import MetadataStore, Webhook
from pipeline.settings import Settings

log = logging.getLogger(__name__)
BATCH = 50  # webhooks a round takes
PARALLEL = 8  # deliveries of a round in flight at once (of different photos)
USER_AGENT = "photopipe-webhooks"
Post = Callable[[str, bytes, dict[str, str], float], int]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other that is not 2xx (a POST is not followed)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body``; the answer's status. Raises OSError (the network, a timeout)."""
    request = urllib.request.Request(url, body, headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass(frozen=True)
class Message:
    """One delivery of a webhook: what is sent, and where."""

    webhook: Webhook
    body: bytes
    headers: dict[str, str]


@dataclass
class Sender:
    """Deliveries over a database; ``url`` turns a rendition's key into its URL."""

    db: MetadataStore
    settings: Settings
    url: Callable[[str], str]
    post: Post = post
    clock: Callable[[], float] = time.time
    signer: Signer = field(init=False)

    def __post_init__(self) -> None:
        check(self.settings)
        self.signer = signer(self.settings.webhook_secret or "")

    def round(self) -> Counter[str]:
        """Deliver what is due now; how many ended each way (``delivered``, ``retry``,
        ``gone``: answered 410, ``given_up``: past the patience, ``overtaken``)."""
        lease = 2 * self.settings.webhook_timeout + 5
        due = self.db.due_webhooks(BATCH, lease)
        outcomes: Counter[str] = Counter()
        messages = []
        for webhook in due:
            if webhook.age > self.settings.webhook_patience:
                log.warning("webhook %s of photo %s given up after %.0f s and %d tries",
                            webhook.event, webhook.photo_id, webhook.age, webhook.attempts)
                self.db.end_webhook(webhook.photo_id, webhook.id)
                outcomes["given_up"] += 1
                continue
            message = self.message(webhook)
            if message is None:
                self.db.end_webhook(webhook.photo_id, webhook.id)
                outcomes["overtaken"] += 1
            else:
                messages.append(message)
        if not messages:
            return outcomes
        with ThreadPoolExecutor(PARALLEL) as pool:  # the network in threads, the database here
            answers = list(pool.map(self.send, messages))
        for message, answer in zip(messages, answers, strict=True):
            outcomes[self.record(message.webhook, answer)] += 1
        return outcomes

    def message(self, webhook: Webhook) -> Message | None:
        """The delivery of ``webhook``, or None when a newer ending has overtaken it."""
        data = self.data(webhook)
        if data is None:
            return None
        happened = datetime.fromtimestamp(self.clock() - webhook.age, UTC)
        body = json.dumps({"type": webhook.event, "timestamp": happened.isoformat(
            timespec="milliseconds").replace("+00:00", "Z"), "data": data},
            separators=(",", ":")).encode()
        msg_id = f"msg_{webhook.photo_id}_{webhook.generation}_{webhook.event.split('.')[1]}"
        now = datetime.fromtimestamp(self.clock(), UTC)
        return Message(webhook, body, {
            "content-type": "application/json", "user-agent": USER_AGENT,
            "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(msg_id, now, body)})

    def data(self, webhook: Webhook) -> dict[str, Any] | None:
        """The photo's document at its ending (None if overtaken); a deleted photo's ids."""
        if webhook.event == "photo.deleted":
            return {"photo_id": str(webhook.photo_id), "generation": webhook.generation,
                    "user_id": None if webhook.user_id is None else str(webhook.user_id)}
        row = self.db.get(webhook.photo_id)
        if row is None or row.generation != webhook.generation or \
                f"photo.{row.status}" != webhook.event:
            return None
        renditions = self.db.renditions(row.id) if row.status == "ready" else []
        return document(row, renditions, self.url)

    def send(self, message: Message) -> int | str:
        """The receiver's status, or what went wrong on the way."""
        assert self.settings.webhook_url is not None
        try:
            return self.post(self.settings.webhook_url, message.body, message.headers,
                             self.settings.webhook_timeout)
        except (OSError, ValueError) as exc:  # refused, reset, timed out; a bad URL
            return f"{type(exc).__name__}: {exc}"

    def record(self, webhook: Webhook, answer: int | str) -> str:
        if isinstance(answer, int) and 200 <= answer < 300:
            self.db.end_webhook(webhook.photo_id, webhook.id)
            return "delivered"
        if answer == 410:
            log.info("webhook %s of photo %s: the receiver answered 410, not sent again",
                     webhook.event, webhook.photo_id)
            self.db.end_webhook(webhook.photo_id, webhook.id)
            return "gone"
        error = f"answered {answer}" if isinstance(answer, int) else answer
        self.db.retry_webhook(webhook.photo_id, webhook.id,
                              backoff(webhook.attempts, self.settings), error)
        return "retry"


Report = Callable[[Counter[str]], None]


def run(make: Callable[[], Sender], stop: threading.Event, *, interval: float = 1.0,
        report: Report | None = None) -> None:
    """Deliver rounds until ``stop`` is set: at once again after a full round, else every
    ``interval`` seconds. The sender is made here (its database connection is this thread's);
    outages are logged and waited out."""
    sender: Sender | None = None
    while not stop.is_set():
        full = False
        try:
            sender = sender or make()
            outcomes = sender.round()
            if outcomes:
                log.info("webhooks: %s", ", ".join(f"{n} {k}" for k, n in sorted(
                    outcomes.items())))
                if report is not None:
                    report(outcomes)
            full = outcomes.total() >= BATCH
        except PhotopipeError as exc:
            log.warning("webhooks: %s: %s", type(exc).__name__, exc)
        except Exception:  # a bug must not stop a worker's webhooks for good
            log.exception("webhooks: unexpected error")
        if not full:
            stop.wait(interval)


def start(make: Callable[[], Sender], stop: threading.Event, *, interval: float = 1.0,
          report: Report | None = None) -> None:
    """Run :func:`run` in a daemon thread until ``stop`` is set."""
    threading.Thread(target=run, args=(make, stop),
                     kwargs={"interval": interval, "report": report},
                     name="photopipe-webhooks", daemon=True).start()


def check(settings: Settings) -> None:
    """Raise ConfigurationError when webhooks are asked for and cannot be sent."""
    if not settings.webhook_url or not settings.webhook_secret:
        raise ConfigurationError("webhooks need PHOTOPIPE_WEBHOOK_URL and "
                                 "PHOTOPIPE_WEBHOOK_SECRET")
    signer(settings.webhook_secret)


def signer(secret: str) -> Signer:
    try:
        return Signer(secret)
    except Exception as exc:  # the library's own errors: a secret it cannot read
        raise ConfigurationError(f"PHOTOPIPE_WEBHOOK_SECRET is not a Standard Webhooks "
                                 f"secret (whsec_<base64>): {exc}") from exc
