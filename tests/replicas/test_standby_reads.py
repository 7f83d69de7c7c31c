"""Reads from standbys (``PHOTOPIPE_READ_FROM_STANDBYS``): the reads where staleness is
harmless go to a standby within a bound, and a read that must see a write sees it.

A private primary with a synchronous standby that replays everything two seconds late
(``recovery_min_apply_delay``): a commit returns once the standby has it on disk, and the
standby shows it two seconds later. The database URL lists both hosts, as an operator
lists a Patroni cluster's members.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline.jobs import process
from pipeline.metadata import MetadataStore, NewPhoto, open_metadata, reads
from pipeline.metadata.reads import Role
from pipeline.metadata.shards.admin import init
from pipeline.metadata.shards.store import ShardedMetadata
from pipeline.producer import Upload, submit
from pipeline.records import Job
from pipeline.settings import Settings
from pipeline.storage.memory import MemoryStore
from tests import private
from tests.helpers import PHOTOS
from tests.pipeline.test_producer import Recorder
from tests.web.harness import cli, embedded, serve
from tests.workers.harness import wait_until

DELAY = 2.0  # seconds the standby replays late
PHOTO = (PHOTOS / "real" / "casio_ex-s1.jpg").read_bytes()


class Pair:
    """The primary, its lagging standby, and a database of a test's own on them."""

    def __init__(self, primary: private.Postgres, standby: private.Postgres) -> None:
        self.primary, self.standby = primary, standby

    def database(self) -> str:
        """A new database, once the standby has it: the URL listing both servers."""
        name = f"t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        wait_until(lambda: self._on_standby(name), 30, "the new database on the standby")
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:"
                f"{self.standby.port}/{name}?target_session_attrs=read-write")

    def _on_standby(self, name: str) -> bool:
        try:
            with psycopg.connect(self.standby.url.rsplit("/", 1)[0] + f"/{name}"):
                return True
        except psycopg.OperationalError:
            return False

    def catch_up(self) -> None:
        """Wait until the standby has replayed all the primary has written now."""
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]

        def replayed() -> bool:
            with psycopg.connect(self.standby.url, autocommit=True) as conn:
                return bool(conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                         (lsn,)).fetchone()[0])  # type: ignore[index]

        wait_until(replayed, 30, "the standby replaying all the primary wrote")

    def standby_has(self, url: str, photo_id: int) -> bool:
        """Whether the standby shows the photo's row (its own schema's, or a shard's)."""
        name = url.split("?", maxsplit=1)[0].rsplit("/", 1)[1]
        with psycopg.connect(self.standby.url.rsplit("/", 1)[0] + f"/{name}") as conn:
            schemas = [r[0] for r in conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = "
                "'photos'")]
            return any(conn.execute(f'SELECT 1 FROM "{s}".photos WHERE id = %s',
                                    (photo_id,)).fetchone() for s in schemas)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with private.postgres() as primary, \
            private.standby(primary, apply_delay=f"{int(DELAY * 1000)}ms") as standby:
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            conn.execute("SELECT pg_reload_conf()")
        yield Pair(primary, standby)


class Roles:
    """The role of the server that answered each read a standby may serve, as counted."""

    def __init__(self) -> None:
        self.seen: list[Role] = []

    def take(self) -> list[Role]:
        seen = list(self.seen)
        self.seen.clear()
        return seen


@pytest.fixture
def roles() -> Iterator[Roles]:
    found = Roles()
    stop = reads.observe(found.seen.append)
    yield found
    stop()


def _store(url: str, max_lag: float = 60.0) -> MetadataStore:
    return open_metadata(Settings(database_url=url, read_from_standbys=True,
                                  standby_max_lag=max_lag))


def test_a_read_given_a_writes_position_sees_it_while_the_standby_lags(
        pair: Pair, roles: Roles) -> None:
    url = pair.database()
    db = _store(url)
    db.upgrade()
    pair.catch_up()  # the schema
    photo = NewPhoto(db.allocate_id(7), "originals/a", user_id=7)
    db.create(photo)
    position = db.position(photo.id)
    assert position is not None and reads.valid(position)
    # Within the bound, the standby answers, as it is: without the photo yet.
    assert db.reader().get(photo.id) is None and roles.take() == ["standby"]
    # Given the write's position, the read goes where the write is: the primary, for now.
    found = db.reader(after=position).get(photo.id)
    assert found is not None and found.status == "queued" and roles.take() == ["primary"]
    # Once replayed, the standby serves it.
    wait_until(lambda: db.reader(after=position).get(photo.id) is not None and
               roles.take()[-1] == "standby", 10, "the standby serving the photo")
    assert not pair.standby_has(url, 0)  # the helper can say no
    db.close()


def test_a_standby_behind_the_bound_sends_reads_to_the_primary(
        pair: Pair, roles: Roles) -> None:
    url = pair.database()
    db = _store(url, max_lag=0.5)
    db.upgrade()
    pair.catch_up()  # the schema
    photo = NewPhoto(db.allocate_id(7), "originals/b", user_id=7)
    db.create(photo)
    # The standby has received the write and will replay it 2 s late: 2 s behind, over 0.5.
    assert db.reader().counts()["queued"] == 1 and roles.take() == ["primary"]
    wait_until(lambda: pair.standby_has(url, photo.id), 10, "the photo on the standby")
    assert db.reader().counts()["queued"] == 1 and roles.take() == ["standby"]
    db.close()


def test_a_sharded_stores_reads_go_to_each_shard_servers_standby(
        pair: Pair, roles: Roles) -> None:
    url = pair.database()
    store = ShardedMetadata(url, standby_max_lag=60.0)
    init(store, 4, [url])
    pair.catch_up()  # the schemas
    first = NewPhoto(store.allocate_id(5), "originals/c", user_id=5)
    store.create(first)
    wait_until(lambda: pair.standby_has(url, first.id), 10, "the photo on the standby")
    second = NewPhoto(store.allocate_id(5), "originals/d", user_id=5)
    store.create(second)
    position = store.position(second.id)
    roles.take()
    # A listing (one shard), the counts (every shard, one statement per server): stale...
    assert [p.id for p in store.reader().photos_of(5, None, 10)] == [first.id]
    assert store.reader().counts()["queued"] == 1
    assert roles.take() == ["standby", "standby"]
    # ...or, after the write's position, with it.
    assert [p.id for p in store.reader(after=position).photos_of(5, None, 10)] == \
        [second.id, first.id]
    assert roles.take() == ["primary"]
    # The store's own reads never go to the standby.
    assert store.get(second.id) is not None and roles.take() == []
    store.close()


def test_with_reads_from_standbys_the_status_counts_converge(pair: Pair, roles: Roles,
                                                             tmp_path: Path) -> None:
    url = pair.database()
    db, store = _store(url), MemoryStore()
    db.upgrade()
    pair.catch_up()  # the schema
    settings = Settings(database_url=url, read_from_standbys=True, standby_max_lag=60.0,
                        retry_backoff=0.01, retry_backoff_max=0.05)
    ids = [submit(Upload(user_id=3, data=PHOTO), store, db, Recorder(), settings)
           for _ in range(4)]
    for photo_id in ids:  # a worker: its start reads the row on the primary, under lock
        outcome = process(Job(photo_id, 1), store, db, settings)
        assert outcome.status == "ready", outcome
    seen = db.reader().counts()
    assert seen["ready"] < 4, "the standby was not behind: the test would prove nothing"
    env = embedded(tmp_path, PHOTOPIPE_DATABASE_URL=url, PHOTOPIPE_READ_FROM_STANDBYS="1",
                   PHOTOPIPE_STANDBY_MAX_LAG="60")

    def converged() -> bool:
        status = cli(env, "status", "--json")
        assert status.returncode == 0, status.stderr
        return '"ready": 4' in status.stdout and '"queued": 0' in status.stdout

    wait_until(converged, 30, "photopipe status to count every photo ready")
    db.close()


def test_the_api_reads_its_clients_writes_and_counts_reads_by_role(pair: Pair,
                                                                   tmp_path: Path) -> None:
    """A write's response gives ``Photopipe-Read-After``; a GET sending it back sees the
    write, where one without it gets the lagging standby's answer (within the bound)."""
    url = pair.database()
    db = _store(url)
    db.upgrade()
    pair.catch_up()  # the schema
    env = embedded(tmp_path, PHOTOPIPE_DATABASE_URL=url, PHOTOPIPE_READ_FROM_STANDBYS="1",
                   PHOTOPIPE_STANDBY_MAX_LAG="60",
                   PHOTOPIPE_SECRET_KEY="standby-reads-key-0123456789")
    auth = {"Authorization": f"Bearer {cli(env, 'ticket', '--user-id', '8').stdout.strip()}"}
    with serve(env, tmp_path / "serve.log") as api:
        posted = api.request("POST", "/v1/photos", PHOTO, auth)
        assert posted.status == 202, posted.body
        location, written = posted.headers["location"], posted.headers["photopipe-read-after"]
        photo_id = int(location.rsplit("/", 1)[1])
        # new to the standby: a GET without the header finds it on the primary
        assert api.request("GET", location, headers=auth).status == 200
        listing = "/v1/users/8/photos"
        assert api.request("GET", listing, headers=auth).json()["photos"] == []  # stale
        with_it = api.request("GET", listing, headers={**auth, "Photopipe-Read-After": written})
        assert [p["photo_id"] for p in with_it.json()["photos"]] == [str(photo_id)]
        wait_until(lambda: pair.standby_has(url, photo_id), 10, "the photo on the standby")

        changed = api.request("PATCH", location, b'{"filter": "clarendon"}',
                              {**auth, "Content-Type": "application/json"})
        assert changed.status == 202 and changed.json()["filter"] == "clarendon"
        after_change = {**auth, "Photopipe-Read-After": changed.headers["photopipe-read-after"]}
        assert api.request("GET", location, headers=after_change).json()["filter"] == \
            "clarendon"
        assert api.request("GET", location, headers=auth).json()["filter"] is None  # stale

        removed = api.request("DELETE", location, headers=auth)
        assert removed.status == 204
        after_delete = {**auth, "Photopipe-Read-After": removed.headers["photopipe-read-after"]}
        assert api.request("GET", location, headers=after_delete).status == 404
        assert api.request("GET", location, headers=auth).status == 200  # stale, in bound

        refused = api.request("GET", location, headers={**auth, "Photopipe-Read-After": "x"})
        assert refused.status == 400 and refused.json()["error"]["code"] == "bad_request"
        page = api.request("GET", "/metrics").body.decode()
    counted = {role: _sample(page, role) for role in ("primary", "standby")}
    assert counted["primary"] >= 3 and counted["standby"] >= 3, counted
    db.close()


def _sample(page: str, role: str) -> float:
    name = f'photopipe_database_reads_total{{role="{role}"}}'
    return sum(float(line.split()[-1]) for line in page.splitlines() if line.startswith(name))


def test_a_standby_that_stops_answering_sends_reads_to_the_primary(pair: Pair,
                                                                    roles: Roles) -> None:
    """The reader's connection to a standby breaks (the standby crashed): the read goes to the
    primary, and so does the next while the standby is down (libpq falls back)."""
    url = pair.database()
    name = url.split("?")[0].rsplit("/", 1)[1]
    with private.standby(pair.primary) as second:
        db = _store(f"postgresql://postgres@127.0.0.1:{pair.primary.port},127.0.0.1:"
                    f"{second.port}/{name}?target_session_attrs=read-write")
        db.upgrade()
        db.create(NewPhoto(db.allocate_id(7), "originals/e", user_id=7))
        wait_until(lambda: db.reader().counts()["queued"] == 1 and
                   roles.take()[-1] == "standby", 30, "the second standby serving reads")
        second.stop("immediate")
        assert db.reader().counts()["queued"] == 1 and roles.take() == ["primary"]
        assert db.reader().counts()["queued"] == 1 and roles.take() == ["primary"]
        db.close()
