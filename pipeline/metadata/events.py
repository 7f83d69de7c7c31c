"""The webhook outbox over SQL (both dialects): the port's webhook methods, mixed into
:class:`~pipeline.metadata.sql.SqlMetadata`."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from pipeline.metadata.port import Event, Webhook


class Cursor(Protocol):
    def execute(self, sql: Any, params: Any = ...) -> Any: ...

    def fetchall(self) -> list[Any]: ...


# Due, and no older webhook of the same photo left (by generation, then as recorded): an
# ending of an older generation is never told after a newer one's.
_DUE = """
    SELECT w.id FROM webhooks w WHERE w.next_at <= {now} AND NOT EXISTS (
        SELECT 1 FROM webhooks o WHERE o.photo_id = w.photo_id
        AND (o.generation < w.generation OR (o.generation = w.generation AND o.id < w.id)))
    ORDER BY w.next_at LIMIT %s"""


class WebhookOutbox:
    """The webhook methods; the class they are mixed into opens transactions and names the
    dialect's clock (``NOW``, ``LATER``, ``EPOCH``, ``SKIP_LOCKED``)."""

    NOW: str
    LATER: str
    EPOCH: str
    SKIP_LOCKED: str

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _notify(self, cur: Cursor, photo_id: int, user_id: int | None, generation: int,
                event: Event) -> None:
        """Record the ending's webhook, in the transaction that records the ending."""
        cur.execute("INSERT INTO webhooks (photo_id, user_id, generation, event) "
                    "VALUES (%s, %s, %s, %s)", (photo_id, user_id, generation, event))

    def due_webhooks(self, limit: int, lease: float) -> list[Webhook]:
        age = f"{self.EPOCH.format(self.NOW)} - {self.EPOCH.format('created_at')}"
        with self._transaction() as cur:
            cur.execute(f"UPDATE webhooks SET next_at = {self.LATER} WHERE id IN "
                        f"({_DUE.format(now=self.NOW)}{self.SKIP_LOCKED}) RETURNING id, "
                        f"photo_id, user_id, generation, event, attempts, {age} AS age",
                        (lease, limit))
            return sorted((_webhook(r) for r in cur.fetchall()), key=lambda w: w.id)

    def end_webhook(self, photo_id: int, webhook_id: int) -> None:
        with self._transaction() as cur:
            cur.execute("DELETE FROM webhooks WHERE id = %s", (webhook_id,))

    def retry_webhook(self, photo_id: int, webhook_id: int, delay: float, error: str) -> None:
        with self._transaction() as cur:
            cur.execute(f"UPDATE webhooks SET attempts = attempts + 1, last_error = %s, "
                        f"next_at = {self.LATER} WHERE id = %s",
                        (error[:1000], delay, webhook_id))


def _webhook(row: Mapping[str, Any]) -> Webhook:
    return Webhook(int(row["id"]), int(row["photo_id"]),
                   None if row["user_id"] is None else int(row["user_id"]),
                   int(row["generation"]), row["event"], int(row["attempts"]),
                   float(row["age"]))
