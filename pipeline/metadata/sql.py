"""The metadata port over SQL, shared by the PostgreSQL and SQLite stores.

The statements are written once, with ``%s`` parameters and ``{now}`` / ``{lock}`` /
``{skip_locked}`` slots each dialect fills in; a subclass supplies the connection, the
transaction and the translation of its driver's errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

from pipeline.errors import PhotoNotFound
from pipeline.metadata.events import WebhookOutbox
from pipeline.metadata.port import (
    STATUSES,
    Backlog,
    Claim,
    NewPhoto,
    PhotoRow,
    Publish,
    RenditionRow,
    Rerender,
    Run,
    Selection,
    Status,
    UploadRow,
    claim_of,
    photo_from_row,
    run_from_row,
)
from pipeline.records import Job, SourceInfo


class Cursor(Protocol):
    """What both drivers' cursors offer (rows as mappings by column name)."""

    def execute(self, sql: Any, params: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: Any, params: Sequence[Sequence[Any]]) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


_CREATE = """
    INSERT INTO photos (id, status, source_key, ladder, filter, strength, user_id, generation)
    VALUES (%s, 'queued', %s, %s, %s, %s, %s, 1)
    ON CONFLICT (id) DO UPDATE SET status = 'queued', source_key = excluded.source_key,
        ladder = excluded.ladder, filter = excluded.filter, strength = excluded.strength,
        user_id = excluded.user_id, generation = photos.generation + 1, attempts = 0,
        placeholder = NULL,
        error_code = NULL, error_message = NULL, last_error_code = NULL,
        last_error_message = NULL, run_id = NULL, updated_at = {now}
    RETURNING generation"""
_REGENERATE = """
    UPDATE photos SET status = 'queued', ladder = %s, filter = %s, strength = %s,
        generation = generation + 1, attempts = 0, run_id = %s, error_code = NULL,
        placeholder = NULL,
        error_message = NULL, last_error_code = NULL, last_error_message = NULL,
        updated_at = {now}
    WHERE id = %s AND (run_id IS NULL OR run_id <> %s) RETURNING generation"""
_START = """
    UPDATE photos SET status = 'processing', lease = lease + 1,
        attempts = attempts + CASE WHEN lease = %s THEN 0 ELSE 1 END, updated_at = {now}
    WHERE id = %s RETURNING *"""
_FINISH = """
    UPDATE photos SET status = 'ready', source_format = %s, source_width = %s,
        source_height = %s, source_bytes = %s, source_frames = %s, orientation = %s,
        spec = %s, placeholder = coalesce(%s, placeholder), error_code = NULL,
        error_message = NULL, updated_at = {now}
    WHERE id = %s AND lease = %s AND status = 'processing' RETURNING id, user_id, generation"""
_FAIL = """
    UPDATE photos SET status = 'failed', error_code = %s, error_message = %s,
        last_error_code = %s, last_error_message = %s, updated_at = {now}
    WHERE id = %s AND lease = %s AND status = 'processing' RETURNING id, user_id, generation"""
_RETRY_LATER = """
    UPDATE photos SET status = 'queued', last_error_code = %s, last_error_message = %s,
        updated_at = {now}
    WHERE id = %s AND lease = %s AND status = 'processing' RETURNING id"""
_NOTE = """
    UPDATE photos SET last_error_code = %s, last_error_message = %s, updated_at = {now}
    WHERE id = %s AND status = 'processing'"""
_RENDITIONS = """
    SELECT name, format, object_key, width, height, bytes FROM renditions
    WHERE photo_id = %s ORDER BY position"""
_INSERT_RENDITIONS = """
    INSERT INTO renditions (photo_id, name, format, object_key, width, height, bytes, position)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"""


class SqlMetadata(WebhookOutbox):
    """The port's logic; subclasses set the dialect and open transactions."""

    NOW = "now()"
    EPOCH = "extract(epoch FROM {})"  # a timestamp as seconds since 1970 (float)
    LOCK = " FOR UPDATE"
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    LATER = "now() + make_interval(secs => %s)"  # a parameter's seconds from now

    def _transaction(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _sql(self, statement: str) -> str:
        return statement.format(now=self.NOW)

    def create(self, photo: NewPhoto, *, enqueue: bool = True,
               idempotency_key: str | None = None) -> Job:
        with self._transaction() as cur:
            if idempotency_key is not None:
                earlier = self._claim_key(cur, photo, idempotency_key)
                if earlier is not None:
                    return earlier
            cur.execute(self._sql(_CREATE), (photo.id, photo.source_key, photo.ladder,
                                             photo.filter, photo.strength, photo.user_id))
            job = Job(photo.id, int(cur.fetchone()["generation"]))
            if enqueue:
                cur.execute("INSERT INTO outbox (photo_id, generation) VALUES (%s, %s)",
                            (job.photo_id, job.generation))
        return job

    def count_upload(self, user_id: int) -> tuple[int, float]:
        now = self.EPOCH.format(self.NOW)
        with self._transaction() as cur:
            cur.execute(f"SELECT {now} AS now")
            clock = float(cur.fetchone()["now"])
            minute = int(clock // 60)
            cur.execute("INSERT INTO upload_counts (user_id, minute, n) VALUES (%s, %s, 1) "
                        "ON CONFLICT (user_id, minute) DO UPDATE SET n = upload_counts.n + 1 "
                        "RETURNING n", (user_id, minute))
            count = int(cur.fetchone()["n"])
            if count == 1:  # the first of a minute clears the user's earlier minutes
                cur.execute("DELETE FROM upload_counts WHERE user_id = %s AND minute < %s",
                            (user_id, minute))
        return count, (minute + 1) * 60 - clock

    def keyed(self, user_id: int, key: str) -> int | None:
        with self._transaction() as cur:
            cur.execute("SELECT photo_id FROM idempotency_keys WHERE user_id = %s AND key = %s",
                        (user_id, key))
            found = cur.fetchone()
        return None if found is None else int(found["photo_id"])

    def _claim_key(self, cur: Cursor, photo: NewPhoto, key: str) -> Job | None:
        """Record ``key`` for ``photo``; or, when the user's key is taken, the job of the photo
        it names (its row locked, so it is read as committed)."""
        if photo.user_id is None:
            raise ValueError("an idempotency key belongs to a user: the photo has none")
        cur.execute("INSERT INTO idempotency_keys (user_id, key, photo_id) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING photo_id", (photo.user_id, key, photo.id))
        if cur.fetchone() is not None:
            return None
        cur.execute("SELECT photo_id FROM idempotency_keys WHERE user_id = %s AND key = %s",
                    (photo.user_id, key))
        earlier = self._photo(cur, int(cur.fetchone()["photo_id"]), lock=True)
        if earlier is None:  # deleted since: the key names nothing any more
            raise PhotoNotFound(f"the photo of idempotency key {key!r} was deleted")
        return Job(earlier.id, earlier.generation)

    def start(self, job: Job, *, refund: int | None = None) -> Claim:
        with self._transaction() as cur:
            row = self._photo(cur, job.photo_id, lock=True)
            if row is None:
                raise PhotoNotFound(f"no photo {job.photo_id}")
            skip = claim_of(row, job)
            if skip is not None:
                return skip
            cur.execute(self._sql(_START), (-1 if refund is None else refund, job.photo_id))
            return Claim(photo_from_row(cur.fetchone()))

    def finish(self, photo_id: int, lease: int, source: SourceInfo,
               renditions: Sequence[RenditionRow], spec: str | None = None, *,
               notify: bool = False, placeholder: str | None = None
               ) -> list[RenditionRow] | None:
        with self._transaction() as cur:
            cur.execute(self._sql(_FINISH), (source.format, source.width, source.height,
                                             source.bytes, source.frames, source.orientation,
                                             spec, placeholder, photo_id, lease))
            ended = cur.fetchone()
            if ended is None:
                return None
            if notify:
                self._notify(cur, photo_id, ended["user_id"], ended["generation"],
                             "photo.ready")
            replaced = self._drop_renditions(cur, photo_id)
            cur.executemany(_INSERT_RENDITIONS, [
                (photo_id, r.name, r.format, r.key, r.width, r.height, r.bytes, position)
                for position, r in enumerate(renditions)])
        return replaced

    def set_placeholder(self, photo_id: int, lease: int, placeholder: str) -> bool:
        with self._transaction() as cur:
            cur.execute("UPDATE photos SET placeholder = %s WHERE id = %s AND lease = %s "
                        "AND status = 'processing' RETURNING id", (placeholder, photo_id, lease))
            return cur.fetchone() is not None

    def fail(self, photo_id: int, lease: int, code: str, message: str, *,
             notify: bool = False) -> list[RenditionRow] | None:
        with self._transaction() as cur:
            cur.execute(self._sql(_FAIL), (code, message, code, message, photo_id, lease))
            ended = cur.fetchone()
            if ended is None:
                return None
            if notify:
                self._notify(cur, photo_id, ended["user_id"], ended["generation"],
                             "photo.failed")
            return self._drop_renditions(cur, photo_id)

    def retry_later(self, photo_id: int, lease: int, code: str, message: str) -> bool:
        with self._transaction() as cur:
            cur.execute(self._sql(_RETRY_LATER), (code, message, photo_id, lease))
            return cur.fetchone() is not None

    def note(self, photo_id: int, code: str, message: str) -> None:
        with self._transaction() as cur:
            cur.execute(self._sql(_NOTE), (code, message, photo_id))

    def requeue(self, job: Job) -> bool:
        with self._transaction() as cur:
            row = self._photo(cur, job.photo_id, lock=True)
            if row is None or claim_of(row, job) is not None:
                return False
            cur.execute("INSERT INTO outbox (photo_id, generation) VALUES (%s, %s)",
                        (job.photo_id, job.generation))
        return True

    def relay(self, publish: Publish, *, limit: int = 100, photo_id: int | None = None) -> int:
        where = "" if photo_id is None else " WHERE photo_id = %s"
        sql = (f"SELECT id, photo_id, generation, {self.EPOCH.format('created_at')} AS queued_at"
               f" FROM outbox{where} ORDER BY id LIMIT %s")
        args = (limit,) if photo_id is None else (photo_id, limit)
        sent: list[int] = []
        failure: Exception | None = None
        with self._transaction() as cur:
            cur.execute(sql + self.SKIP_LOCKED, args)
            for entry in cur.fetchall():
                try:
                    publish(Job(int(entry["photo_id"]), int(entry["generation"]),
                                float(entry["queued_at"])))
                except Exception as exc:  # commit what was sent, then let it propagate
                    failure = exc
                    break
                sent.append(int(entry["id"]))
            cur.executemany("DELETE FROM outbox WHERE id = %s", [(i,) for i in sent])
        if failure is not None:
            raise failure
        return len(sent)

    def outbox_size(self) -> int:
        with self._transaction() as cur:
            cur.execute("SELECT count(*) AS n FROM outbox")
            return int(cur.fetchone()["n"])

    def stuck(self, queued_for: float, processing_for: float, limit: int) -> list[Job]:
        with self._transaction() as cur:
            cur.execute(f"SELECT id, generation FROM photos WHERE {self._stuck()} "
                        "ORDER BY updated_at, id LIMIT %s", (queued_for, processing_for, limit))
            return [Job(int(r["id"]), int(r["generation"])) for r in cur.fetchall()]

    def requeue_stuck(self, jobs: Sequence[Job], queued_for: float,
                      processing_for: float) -> list[Job]:
        queued: list[Job] = []
        with self._transaction() as cur:
            for job in jobs:
                cur.execute(self._sql("UPDATE photos SET updated_at = {now} ") +
                            f"WHERE id = %s AND generation = %s AND {self._stuck()} RETURNING id",
                            (job.photo_id, job.generation, queued_for, processing_for))
                if cur.fetchone() is not None:
                    queued.append(Job(job.photo_id, job.generation))
            cur.executemany("INSERT INTO outbox (photo_id, generation) VALUES (%s, %s)",
                            [(job.photo_id, job.generation) for job in queued])
        return queued

    def _stuck(self) -> str:
        """Rows no job may render: two parameters, the seconds a queued and a processing row
        must have waited (since ``updated_at``, which every change of state sets)."""
        waited = f"{self.EPOCH.format(self.NOW)} - {self.EPOCH.format('updated_at')}"
        return (f"(status = 'queued' AND {waited} > %s OR status = 'processing' AND {waited} > %s)"
                " AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.photo_id = photos.id)")

    def take_turn(self, name: str, holder: str, seconds: float) -> bool:
        with self._transaction() as cur:
            cur.execute(
                f"INSERT INTO sweep_turns (name, holder, until) VALUES (%s, %s, {self.LATER}) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                f"until = excluded.until WHERE sweep_turns.until <= {self.NOW} "
                "OR sweep_turns.holder = excluded.holder RETURNING holder",
                (name, holder, seconds))
            return cur.fetchone() is not None

    def backlog(self) -> Backlog:
        now = self.EPOCH.format(self.NOW)
        with self._transaction() as cur:
            cur.execute(f"SELECT count(*) AS n, {now} - min({self.EPOCH.format('updated_at')})"
                        " AS age FROM photos WHERE status = 'queued'")
            photos = cur.fetchone()
            cur.execute(f"SELECT count(*) AS n, {now} - min({self.EPOCH.format('created_at')})"
                        " AS age FROM outbox")
            outbox = cur.fetchone()
            cur.execute(f"SELECT {now} - min({self.EPOCH.format('updated_at')}) AS age "
                        "FROM photos WHERE status = 'queued' AND NOT EXISTS "
                        "(SELECT 1 FROM outbox WHERE outbox.photo_id = photos.id)")
            without_job = cur.fetchone()
        return Backlog(int(photos["n"]), _seconds(photos["age"]), int(outbox["n"]),
                       _seconds(outbox["age"]), _seconds(without_job["age"]))

    def get(self, photo_id: int) -> PhotoRow | None:
        with self._transaction() as cur:
            return self._photo(cur, photo_id)

    def renditions(self, photo_id: int) -> list[RenditionRow]:
        with self._transaction() as cur:
            return self._renditions(cur, photo_id)

    def counts(self) -> dict[str, int]:
        with self._transaction() as cur:
            cur.execute("SELECT status, count(*) AS n FROM photos GROUP BY status")
            found = {r["status"]: int(r["n"]) for r in cur.fetchall()}
        return {status: found.get(status, 0) for status in STATUSES}

    def delete(self, photo_id: int, *,
               notify: bool = False) -> tuple[PhotoRow, list[RenditionRow]] | None:
        with self._transaction() as cur:
            row = self._photo(cur, photo_id, lock=True)
            if row is None:
                return None
            if notify:
                self._notify(cur, photo_id, row.user_id, row.generation, "photo.deleted")
            dropped = self._drop_renditions(cur, photo_id)
            cur.execute("DELETE FROM outbox WHERE photo_id = %s", (photo_id,))
            cur.execute("DELETE FROM idempotency_keys WHERE photo_id = %s", (photo_id,))
            cur.execute("DELETE FROM photos WHERE id = %s", (photo_id,))
        return row, dropped

    def photos_of(self, user_id: int, before: int | None, limit: int) -> list[PhotoRow]:
        with self._transaction() as cur:
            cur.execute("SELECT * FROM photos WHERE user_id = %s AND id < %s ORDER BY id DESC "
                        "LIMIT %s", (user_id, 2**63 - 1 if before is None else before, limit))
            return [photo_from_row(r) for r in cur.fetchall()]

    def open_upload(self, upload: UploadRow) -> None:
        with self._transaction() as cur:
            cur.execute("INSERT INTO uploads (photo_id, user_id, expires, version, state) "
                        "VALUES (%s, %s, %s, %s, %s)", (upload.photo_id, upload.user_id,
                                                        upload.expires, upload.version,
                                                        upload.state))

    def get_upload(self, photo_id: int) -> UploadRow | None:
        with self._transaction() as cur:
            cur.execute("SELECT * FROM uploads WHERE photo_id = %s", (photo_id,))
            found = cur.fetchone()
        return None if found is None else _upload(found)

    def put_upload(self, photo_id: int, version: int, state: str) -> bool:
        with self._transaction() as cur:
            cur.execute("UPDATE uploads SET state = %s, version = version + 1 "
                        "WHERE photo_id = %s AND version = %s RETURNING photo_id",
                        (state, photo_id, version))
            return cur.fetchone() is not None

    def drop_upload(self, photo_id: int) -> UploadRow | None:
        with self._transaction() as cur:
            cur.execute("DELETE FROM uploads WHERE photo_id = %s RETURNING *", (photo_id,))
            found = cur.fetchone()
        return None if found is None else _upload(found)

    def expired_uploads(self, now: float, limit: int) -> list[UploadRow]:
        with self._transaction() as cur:
            cur.execute("SELECT * FROM uploads WHERE expires < %s ORDER BY expires LIMIT %s",
                        (now, limit))
            return [_upload(r) for r in cur.fetchall()]

    def scan(self, selection: Selection, after: int, limit: int) -> list[PhotoRow]:
        where, args = ["id > %s"], list[Any]([after])
        if selection.from_id is not None:
            where.append("id >= %s")
            args.append(selection.from_id)
        if selection.to_id is not None:
            where.append("id <= %s")
            args.append(selection.to_id)
        if selection.statuses:
            where.append(f"status IN ({', '.join(['%s'] * len(selection.statuses))})")
            args += selection.statuses
        if selection.user_id is not None:
            where.append("user_id = %s")
            args.append(selection.user_id)
        if selection.look == "none":
            where.append("filter IS NULL")
        elif selection.look is not None:
            where.append("filter = %s")
            args.append(selection.look)
        with self._transaction() as cur:
            cur.execute(f"SELECT * FROM photos WHERE {' AND '.join(where)} ORDER BY id "
                        "LIMIT %s", (*args, limit))
            return [photo_from_row(r) for r in cur.fetchall()]

    def regenerate(self, run_id: int, photos: Sequence[Rerender], *, cursor: int,
                   enqueue: bool = True) -> list[Job]:
        jobs = []
        with self._transaction() as cur:
            for photo in photos:
                # a photo this run already regenerated (a batch resumed) keeps its job
                cur.execute(self._sql(_REGENERATE), (photo.ladder, photo.filter, photo.strength,
                                                     run_id, photo.photo_id, run_id))
                row = cur.fetchone()
                if row is not None:
                    jobs.append(Job(photo.photo_id, int(row["generation"])))
            if enqueue:
                cur.executemany("INSERT INTO outbox (photo_id, generation) VALUES (%s, %s)",
                                [(j.photo_id, j.generation) for j in jobs])
            cur.execute(self._sql("UPDATE reprocess_runs SET cursor = %s, "
                                  "enqueued = enqueued + %s, updated_at = {now} WHERE id = %s"),
                        (cursor, len(jobs), run_id))
        return jobs

    def create_run(self, key: str, selection: str, changes: str, mode: str) -> Run:
        with self._transaction() as cur:
            cur.execute("INSERT INTO reprocess_runs (key, selection, changes, mode, state) "
                        "VALUES (%s, %s, %s, %s, 'running') RETURNING *",
                        (key, selection, changes, mode))
            return run_from_row(cur.fetchone())

    def find_run(self, key: str) -> Run | None:
        with self._transaction() as cur:
            cur.execute("SELECT * FROM reprocess_runs WHERE key = %s AND state = 'running' "
                        "ORDER BY id DESC LIMIT 1", (key,))
            row = cur.fetchone()
        return run_from_row(row) if row else None

    def get_run(self, run_id: int) -> Run | None:
        with self._transaction() as cur:
            cur.execute("SELECT * FROM reprocess_runs WHERE id = %s", (run_id,))
            row = cur.fetchone()
        return run_from_row(row) if row else None

    def runs(self, limit: int = 50) -> list[Run]:
        with self._transaction() as cur:
            cur.execute("SELECT * FROM reprocess_runs ORDER BY id DESC LIMIT %s", (limit,))
            return [run_from_row(r) for r in cur.fetchall()]

    def end_run(self, run_id: int, state: Literal["done", "cancelled"]) -> None:
        with self._transaction() as cur:
            cur.execute(self._sql("UPDATE reprocess_runs SET state = %s, updated_at = {now} "
                                  "WHERE id = %s"), (state, run_id))

    def tally(self, run_id: int) -> dict[tuple[str, str | None], int]:
        with self._transaction() as cur:
            cur.execute("SELECT status, error_code, count(*) AS n FROM photos "
                        "WHERE run_id = %s GROUP BY status, error_code", (run_id,))
            return {(r["status"], r["error_code"]): int(r["n"]) for r in cur.fetchall()}

    def run_photos(self, run_id: int, statuses: Sequence[Status], after: int,
                   limit: int) -> list[PhotoRow]:
        marks = ", ".join(["%s"] * len(statuses))
        with self._transaction() as cur:
            cur.execute(f"SELECT * FROM photos WHERE run_id = %s AND status IN ({marks}) "
                        "AND id > %s ORDER BY id LIMIT %s", (run_id, *statuses, after, limit))
            return [photo_from_row(r) for r in cur.fetchall()]

    def _photo(self, cur: Cursor, photo_id: int, *, lock: bool = False) -> PhotoRow | None:
        cur.execute("SELECT * FROM photos WHERE id = %s" + (self.LOCK if lock else ""),
                    (photo_id,))
        row: Mapping[str, Any] | None = cur.fetchone()
        return photo_from_row(row) if row else None

    def _renditions(self, cur: Cursor, photo_id: int) -> list[RenditionRow]:
        cur.execute(_RENDITIONS, (photo_id,))
        return list(_rendition_rows(cur.fetchall()))

    def _drop_renditions(self, cur: Cursor, photo_id: int) -> list[RenditionRow]:
        """Delete the photo's rendition rows; return them in their order (one statement)."""
        cur.execute("DELETE FROM renditions WHERE photo_id = %s RETURNING name, format, "
                    "object_key, width, height, bytes, position", (photo_id,))
        return list(_rendition_rows(sorted(cur.fetchall(), key=lambda r: int(r["position"]))))


def _upload(row: Mapping[str, Any]) -> UploadRow:
    return UploadRow(int(row["photo_id"]), int(row["user_id"]), float(row["expires"]),
                     int(row["version"]), str(row["state"]))


def _rendition_rows(rows: list[Mapping[str, Any]]) -> Iterator[RenditionRow]:
    for r in rows:
        yield RenditionRow(r["name"], r["format"], r["object_key"], r["width"], r["height"],
                           r["bytes"])


def _seconds(age: Any) -> float | None:
    """An age from SQL (a number, or NULL over no rows), never below zero (clock steps)."""
    return None if age is None else max(0.0, float(age))
