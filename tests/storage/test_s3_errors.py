"""botocore's and libcurl's errors are classified once, at the S3 store: one test per class,
over HTTP. Puts and gets go through libcurl, the other calls through boto3; both are tried here
where a class can reach them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

from pipeline.errors import ObjectNotFound, StorageRejected, StorageUnavailable, TooLarge
from pipeline.storage.s3 import S3Store, client
from tests.s3faults import FaultyS3
from tests.services import S3Server, free_port


@pytest.fixture
def faulty(moto: S3Server) -> Iterator[tuple[FaultyS3, S3Store]]:
    proxy = FaultyS3(moto.endpoint)
    bucket = moto.store().bucket
    s3 = client(proxy.url, moto.access_key, moto.secret_key, max_attempts=1, read_timeout=1)
    yield proxy, S3Store(s3, bucket, "pp")
    proxy.close()


@pytest.mark.parametrize("fault", [
    ("error", 500, "InternalError"), ("error", 503, "SlowDown"), ("error", 429, "TooManyRequests"),
    ("error", 502, "BadGateway"), ("reset",), ("stall", 3)])
def test_server_side_trouble_is_transient(faulty: tuple[FaultyS3, S3Store],
                                          fault: tuple[Any, ...]) -> None:
    proxy, store = faulty
    store.put("k", b"x", "text/plain")
    proxy.fault = fault
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.get("k")
    assert time.monotonic() - started < 2.5  # a stall ends at the client's 1 s read timeout
    with pytest.raises(StorageUnavailable):
        store.put("k", b"y", "text/plain")
    # one attempt each (max_attempts=1); but a kept-alive connection lost before any answer,
    # the get's, is one libcurl sends the request again on, once, on a new connection
    assert proxy.injected == (3 if fault == ("reset",) else 2)
    proxy.fault = None
    assert store.get("k") == b"x"  # nothing was changed by the failed put


@pytest.mark.parametrize("fault", [("page", 502), ("page", 503, ""), ("page", 504)])
def test_an_answer_that_is_no_s3_error_is_transient_when_the_status_says_so(
        faulty: tuple[FaultyS3, S3Store], fault: tuple[Any, ...]) -> None:
    """An error page, or an empty body: the status decides, as for an S3 error."""
    proxy, store = faulty
    proxy.fault = fault
    with pytest.raises(StorageUnavailable, match=str(fault[1])):
        store.get("k")
    with pytest.raises(StorageUnavailable, match=str(fault[1])):
        store.put("k", b"y", "text/plain")


@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_refusal_answered_with_a_page_is_the_set_ups_fault(
        faulty: tuple[FaultyS3, S3Store], status: int) -> None:
    proxy, store = faulty
    proxy.fault = ("page", status)
    with pytest.raises(StorageRejected, match=str(status)):
        store.put("k", b"x", "text/plain")
    with pytest.raises(StorageRejected, match=str(status)):
        store.get("k")


def test_a_listing_through_boto3_is_classified_by_the_same_rules(
        faulty: tuple[FaultyS3, S3Store]) -> None:
    proxy, store = faulty
    proxy.fault = ("error", 503, "SlowDown")
    with pytest.raises(StorageUnavailable, match="SlowDown"):
        list(store.list("photos/"))
    proxy.fault = ("error", 403, "AccessDenied")
    with pytest.raises(StorageRejected, match="AccessDenied"):
        store.delete_many(["a", "b"])


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (404, "NoSuchBucket"),
                                              (403, "InvalidAccessKeyId"), (400, "BadDigest")])
def test_refusals_are_the_set_ups_fault(faulty: tuple[FaultyS3, S3Store], status: int,
                                        code: str) -> None:
    proxy, store = faulty
    proxy.fault = ("error", status, code)
    with pytest.raises(StorageRejected, match=code):
        store.put("k", b"x", "text/plain")
    with pytest.raises(StorageRejected, match=code):
        store.get("k")


def test_a_missing_key_is_not_found_and_missing_credentials_are_rejected(
        faulty: tuple[FaultyS3, S3Store], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, store = faulty
    with pytest.raises(ObjectNotFound):
        store.get("nothing")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    anonymous = S3Store(client(proxy.url, max_attempts=1), store.bucket)
    with pytest.raises(StorageRejected, match="credentials"):
        anonymous.get("k")


@pytest.mark.parametrize("how", ["ca_bundle", "scheme"])
def test_an_endpoint_libcurl_cannot_use_is_the_set_ups_fault(
        faulty: tuple[FaultyS3, S3Store], monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A CA bundle that is not there (AWS_CA_BUNDLE), or an endpoint that is not HTTP(S): refused
    at once, not waited out as an outage. A port nobody listens on is an outage."""
    proxy, store = faulty
    if how == "ca_bundle":
        monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
        endpoint = proxy.url.replace("http://", "https://")  # a server there, to start TLS with
    else:
        endpoint = proxy.url.replace("http://", "ftp://")
    broken = S3Store(client(endpoint, "a", "b", max_attempts=1), store.bucket)
    with pytest.raises(StorageRejected, match="AWS_CA_BUNDLE"):
        broken.get("k")
    with pytest.raises(StorageRejected, match="PHOTOPIPE_S3_ENDPOINT_URL"):
        broken.put("k", b"x", "text/plain")
    closed = S3Store(client(f"http://127.0.0.1:{free_port()}", "a", "b", max_attempts=1),
                     store.bucket)
    with pytest.raises(StorageUnavailable, match="curl 7"):
        closed.get("k")


# Every error code botocore's standard retry mode retries, whatever status it comes with (its
# checkers' own lists, which its type stubs do not show).
BOTOCORE_RETRIES: list[str] = sorted({
    *TransientRetryableChecker._TRANSIENT_ERROR_CODES,  # type: ignore[attr-defined]
    *ThrottledRetryableChecker._THROTTLED_ERROR_CODES})  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", [*BOTOCORE_RETRIES, "RequestTimeTooSkewed"])
def test_what_botocore_retries_is_transient_even_as_a_4xx(faulty: tuple[FaultyS3, S3Store],
                                                          code: str) -> None:
    """S3 answers RequestTimeout with a 400 and a skewed clock with a 403: waited out, not
    read as photopipe's set-up being wrong."""
    proxy, store = faulty
    proxy.fault = ("error", 403 if code == "RequestTimeTooSkewed" else 400, code)
    with pytest.raises(StorageUnavailable, match=code):
        store.get("k")


@pytest.mark.parametrize("fault", [("error", 400, "RequestTimeout"), ("error", 503, "SlowDown")])
def test_a_blip_is_retried_within_the_call_as_many_times_as_the_client_says(
        moto: S3Server, fault: tuple[Any, ...]) -> None:
    """A put or a get is tried ``max_attempts`` times in all, like boto3's own calls: two faults
    and the third attempt answers; three and the call gives up."""
    proxy = FaultyS3(moto.endpoint)
    try:
        store = S3Store(client(proxy.url, moto.access_key, moto.secret_key, max_attempts=3),
                        moto.store().bucket, "pp")
        store.put("k", b"picture", "image/jpeg")
        proxy.fault, proxy.times = fault, 2
        assert store.get("k") == b"picture"
        proxy.times = 2
        store.put("k", b"other", "image/jpeg")
        assert proxy.injected == 4
        proxy.times = 3
        with pytest.raises(StorageUnavailable):
            store.get("k")
        assert proxy.injected == 7
        proxy.fault = None
        assert store.get("k") == b"other"
    finally:
        proxy.close()


def test_a_reset_is_retried_and_a_lost_kept_alive_connection_costs_no_attempt(
        moto: S3Server) -> None:
    """The first attempt goes out on the connection the last call kept alive; when that one is
    reset before any answer, libcurl sends the request again, once, on a new connection (a
    server closes an idle connection whenever it likes). Every later attempt is on a new
    connection: ``max_attempts`` of them in all, then the call gives up."""
    proxy = FaultyS3(moto.endpoint)
    try:
        store = S3Store(client(proxy.url, moto.access_key, moto.secret_key, max_attempts=3),
                        moto.store().bucket, "pp")
        store.put("k", b"picture", "image/jpeg")
        proxy.fault, proxy.times = ("reset",), 2  # the kept-alive one, then the new one
        assert store.get("k") == b"picture"
        assert proxy.injected == 2
        proxy.times = None
        with pytest.raises(StorageUnavailable, match=r"reset|recv|receiv|Connection"):
            store.put("k", b"other", "image/jpeg")
        assert proxy.injected == 2 + 2 + 1 + 1  # kept-alive and its resend, then two new
        proxy.fault = None
        assert store.get("k") == b"picture"  # nothing was changed by the failed put
    finally:
        proxy.close()


def test_a_ranged_read_moves_at_most_one_byte_past_the_limit(
        faulty: tuple[FaultyS3, S3Store]) -> None:
    """Counted at the proxy: refusing after reading the whole object would be no limit."""
    proxy, store = faulty
    data = bytes(range(256)) * 1000  # 256 000 bytes
    store.put("original", data, "application/octet-stream")
    before = proxy.sent
    with pytest.raises(TooLarge):
        store.get("original", max_bytes=1000)
    assert proxy.sent - before == 1001
    before = proxy.sent
    assert store.get("original", max_bytes=len(data)) == data
    assert proxy.sent - before == len(data)
    before = proxy.sent
    with pytest.raises(TooLarge):
        store.get("original", max_bytes=len(data) - 1)
    assert proxy.sent - before == len(data)
