"""One contract, every object store."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import ObjectNotFound, StorageRejected, StorageUnavailable, TooLarge
from pipeline.settings import Settings
from pipeline.storage import PART_BYTES, ObjectStore, open_store
from pipeline.storage.local import LocalStore
from pipeline.storage.memory import MemoryStore
from pipeline.storage.s3 import RENDITION_CACHE_CONTROL, S3Store, client
from tests.services import S3Server, free_port


@pytest.fixture(params=["memory", "local", "s3-moto", "s3-ceph"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "local":
        yield LocalStore(tmp_path / "objects")
    else:
        server: S3Server = request.getfixturevalue(request.param.removeprefix("s3-"))
        yield server.store()


def test_put_then_get_round_trips_bytes(store: ObjectStore) -> None:
    store.put("photos/1/w1080.jpg", b"\xff\xd8 jpeg", "image/jpeg")
    assert store.get("photos/1/w1080.jpg") == b"\xff\xd8 jpeg"
    assert store.exists("photos/1/w1080.jpg")


@pytest.mark.parametrize("key", ["photos/a b+c/\u00e9~x=y&z;(1).jpg", "originals/100%25 *"])
def test_a_key_is_stored_under_its_own_name(store: ObjectStore, key: str) -> None:
    """Characters a URL must encode (and S3's signature must encode the same way)."""
    store.put(key, b"bytes", "image/jpeg")
    assert store.get(key) == b"bytes"
    assert list(store.list(key.split("/", maxsplit=1)[0] + "/")) == [key]


def test_a_body_of_several_megabytes_round_trips(store: ObjectStore) -> None:
    """A 12 MP original's size: one PUT, read back whole and ranged."""
    data = bytes(range(256)) * (3 * 4096 + 7)  # 3 MiB and a little
    store.put("originals/2", data, "application/octet-stream")
    assert store.get("originals/2") == data
    assert store.get("originals/2", max_bytes=len(data)) == data


def test_put_overwrites(store: ObjectStore) -> None:
    store.put("a/b", b"one", "application/octet-stream")
    store.put("a/b", b"two", "application/octet-stream")
    assert store.get("a/b") == b"two"
    assert list(store.list("a/")) == ["a/b"]


def test_missing_key(store: ObjectStore) -> None:
    assert not store.exists("nothing/here")
    with pytest.raises(ObjectNotFound):
        store.get("nothing/here")


@pytest.mark.parametrize("size", [0, 99, 100])
def test_a_read_with_a_limit_accepts_up_to_it(store: ObjectStore, size: int) -> None:
    store.put("originals/1", b"x" * size, "application/octet-stream")
    assert store.get("originals/1", max_bytes=100) == b"x" * size


def test_a_read_with_a_limit_refuses_one_byte_more(store: ObjectStore) -> None:
    store.put("originals/1", b"x" * 101, "application/octet-stream")
    with pytest.raises(TooLarge, match="100 bytes"):
        store.get("originals/1", max_bytes=100)
    with pytest.raises(ObjectNotFound):
        store.get("originals/none", max_bytes=100)


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("k/1", b"x", "text/plain")
    store.delete("k/1")
    store.delete("k/1")
    assert not store.exists("k/1")
    assert list(store.list()) == []


def test_delete_many_removes_those_keys_and_only_those(store: ObjectStore) -> None:
    for key in ("photos/1/1.1/a", "photos/1/1.1/b", "photos/1/1.2/a", "originals/1"):
        store.put(key, b"x", "text/plain")
    store.delete_many(["photos/1/1.1/a", "photos/1/1.1/b", "photos/1/1.1/never-there"])
    assert list(store.list()) == ["originals/1", "photos/1/1.2/a"]
    store.delete_many([])
    assert len(list(store.list())) == 2


def test_list_filters_by_prefix_in_sorted_order(store: ObjectStore) -> None:
    for key in ("photos/2/b", "photos/1/a", "originals/1", "photos/10/c"):
        store.put(key, key.encode(), "text/plain")
    assert list(store.list("photos/")) == ["photos/1/a", "photos/10/c", "photos/2/b"]
    assert list(store.list("photos/1/")) == ["photos/1/a"]
    assert len(list(store.list())) == 4


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../escape", "a/../../b", "a//b", "./a"])
def test_unsafe_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(key, b"x", "text/plain")


def test_empty_object(store: ObjectStore) -> None:
    store.put("empty", b"", "application/octet-stream")
    assert store.get("empty") == b""


def test_open_store_by_url(tmp_path: Path) -> None:
    local = open_store(Settings(storage_url=f"file://{tmp_path}/o"))
    assert isinstance(local, LocalStore) and local.root == tmp_path / "o"
    assert isinstance(open_store(Settings(storage_url="memory://")), MemoryStore)
    with pytest.raises(ValueError, match="ftp"):
        open_store(Settings(storage_url="ftp://x/y"))


@pytest.mark.parametrize("server_name", ["moto", "ceph"])
def test_s3_sets_content_type_and_cache_headers(server_name: str,
                                                request: pytest.FixtureRequest) -> None:
    store = request.getfixturevalue(server_name).store()
    store.put("photos/1/w1080.webp", b"RIFF....WEBP", "image/webp")
    store.put("originals/1", b"raw upload", "application/octet-stream")
    head = store.head("photos/1/w1080.webp")
    assert head["ContentType"] == "image/webp"
    # a rendition key never holds other bytes (it names its render): cached for good
    assert head["CacheControl"] == RENDITION_CACHE_CONTROL == (
        "public, max-age=31536000, immutable")
    assert "CacheControl" not in store.head("originals/1")
    assert store.s3.get_object(Bucket=store.bucket, Key="pp/originals/1")["Body"].read() == (
        b"raw upload")  # the prefix is part of the real key


def test_s3_errors_are_translated(moto: S3Server, ceph: S3Server) -> None:
    missing_bucket = S3Store(client(moto.endpoint, moto.access_key, moto.secret_key), "nope")
    with pytest.raises(StorageRejected):
        missing_bucket.put("k", b"x", "text/plain")
    bad_secret = S3Store(client(ceph.endpoint, ceph.access_key, "wrong"), "any")
    with pytest.raises(StorageRejected, match=r"SignatureDoesNotMatch|AccessDenied"):
        bad_secret.put("k", b"x", "text/plain")
    closed = S3Store(client(f"http://127.0.0.1:{free_port()}", "a", "b"), "closed")
    with pytest.raises(StorageUnavailable):
        closed.get("k")
    with pytest.raises(StorageRejected, match="bucket name"):
        S3Store(client(moto.endpoint, moto.access_key, moto.secret_key), "x").get("k")


def test_s3_client_keeps_its_model_without_the_prose() -> None:
    """The client's service model is read with its documentation emptied (5 MB per worker), and
    every request still builds from it (the contract tests above run on such clients)."""
    s3 = client("http://127.0.0.1:9", "a", "b")
    model = s3.meta.service_model
    put = model.operation_model("PutObject")
    assert put.documentation == ""
    assert put.input_shape is not None and "ContentType" in put.input_shape.members


def test_a_url_fetches_the_object_without_credentials_where_the_store_has_urls(
        store: ObjectStore) -> None:
    store.put("photos/9/w320.jpg", b"\xff\xd8 rendition", "image/jpeg")
    url = store.url("photos/9/w320.jpg", 60)
    if isinstance(store, MemoryStore | LocalStore):
        assert url is None  # the HTTP face serves these itself
        return
    assert url is not None and "X-Amz-Expires=60" in url  # SigV4, expiring when asked
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.read() == b"\xff\xd8 rendition"
    forged = url.replace("w320", "w640")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code in (403, 404)


# -- multipart ---------------------------------------------------------------------------------

def test_parts_joined_in_order_make_the_object(store: ObjectStore) -> None:
    first, last = b"a" * PART_BYTES, b"the rest"
    upload = store.begin_parts("originals/7", "application/octet-stream")
    tag_last = store.put_part("originals/7", upload, 2, last)  # in any order
    tag_first = store.put_part("originals/7", upload, 1, first)
    assert not store.exists("originals/7")
    assert list(store.list()) == []  # parts are not objects
    store.join_parts("originals/7", upload, [(1, tag_first), (2, tag_last)])
    assert store.get("originals/7") == first + last
    assert list(store.list()) == ["originals/7"]


def test_a_part_replaced_since_its_tag_was_taken_is_refused(store: ObjectStore) -> None:
    upload = store.begin_parts("originals/8", "application/octet-stream")
    old = store.put_part("originals/8", upload, 1, b"first version")
    new = store.put_part("originals/8", upload, 1, b"second version")
    assert old != new
    with pytest.raises(StorageRejected):
        store.join_parts("originals/8", upload, [(1, old)])
    store.join_parts("originals/8", upload, [(1, new)])
    assert store.get("originals/8") == b"second version"


def test_every_part_but_the_last_is_at_least_part_bytes(store: ObjectStore) -> None:
    upload = store.begin_parts("originals/9", "application/octet-stream")
    short = store.put_part("originals/9", upload, 1, b"x" * (PART_BYTES - 1))
    last = store.put_part("originals/9", upload, 2, b"y")
    with pytest.raises(StorageRejected):
        store.join_parts("originals/9", upload, [(1, short), (2, last)])
    store.drop_parts("originals/9", upload)


def test_dropped_parts_are_gone(store: ObjectStore) -> None:
    upload = store.begin_parts("originals/10", "application/octet-stream")
    store.put_part("originals/10", upload, 1, b"abandoned")
    store.drop_parts("originals/10", upload)
    store.drop_parts("originals/10", upload)  # twice: not an error
    assert not store.exists("originals/10")
    assert list(store.list()) == []


@pytest.mark.parametrize("number", [0, 10_001])
def test_part_numbers_are_one_to_ten_thousand(store: ObjectStore, number: int) -> None:
    upload = store.begin_parts("originals/11", "application/octet-stream")
    with pytest.raises(ValueError):
        store.put_part("originals/11", upload, number, b"x")
    store.drop_parts("originals/11", upload)
