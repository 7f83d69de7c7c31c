"""The S3 object store (``s3://bucket/prefix``): AWS, MinIO, Ceph or any S3-compatible store.

The boto3 client is injected (tests point it at moto's server or Ceph's RADOS gateway);
:func:`client` builds the production one: boto3's standard retry mode, bounded timeouts,
credentials from the standard AWS chain. The two calls every photo makes, the PUTs and the GET,
go through libcurl instead (:mod:`pipeline.storage.curl`; :func:`data_client` makes it from the
boto3 client's endpoint, region, timeouts and credentials, and the store retries as many times
as boto3 would): libcurl signs and sends in C. A 612x612 rendition's PUT costs 0.27 ms of CPU,
against 0.69 with MinIO's client (photopipe's before) and 1.85 with boto3, its GET 0.23 against
0.73 and 1.49 (``benchmarks/glue.py``, one run); a job makes four of them. Listing, deleting,
presigning and multipart stay with boto3. Neither library's exceptions leave this module: they
become :class:`StorageUnavailable` (retry) or :class:`StorageRejected` /
:class:`ObjectNotFound`, by the same rules.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
import pycurl
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.httpsession import get_cert_path
from botocore.loaders import JSONFileLoader, Loader
from botocore.retries.standard import (
    OrRetryChecker,
    RetryContext,
    ThrottledRetryableChecker,
    TransientRetryableChecker,
)

from pipeline.errors import ObjectNotFound, StorageRejected, StorageUnavailable
from pipeline.storage import check_key, check_part, check_size
from pipeline.storage.curl import Answered, Curl, Keys

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

# A rendition's key names its photo's generation and lease: a re-render writes new keys, so
# what a key holds never changes, and caches may keep it for good.
RENDITION_CACHE_CONTROL = "public, max-age=31536000, immutable"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
# What botocore's standard retry mode retries (transient codes and statuses, throttling), so an
# error boto3 gave up retrying is one the job waits out too, whatever its status (S3 answers
# RequestTimeout with a 400). Beyond those: a 429, S3's own 5xx names, TooManyRequests
# (S3-compatible stores), and a skewed clock (botocore corrects its offset, then signs right).
_BOTOCORE_RETRIES = OrRetryChecker([TransientRetryableChecker(), ThrottledRetryableChecker()])
_TRANSIENT = {"InternalError", "ServiceUnavailable", "TooManyRequests", "RequestTimeTooSkewed"}
# botocore errors raised before any request: photopipe's set-up, not the network.
_CONFIGURATION = (NoCredentialsError, PartialCredentialsError, NoRegionError,
                  ParamValidationError)
# libcurl's errors that say photopipe's set-up is wrong, not the network: an endpoint URL it
# cannot use (not http or https, or malformed), or a CA bundle it cannot read.
_CURL_SET_UP = {pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT,
                pycurl.E_SSL_CACERT_BADFILE}
T = TypeVar("T")


def client(endpoint_url: str | None = None, access_key: str | None = None,
           secret_key: str | None = None, *, max_attempts: int = 3,
           read_timeout: float = 20) -> S3Client:
    """A boto3 S3 client with photopipe's retry and timeout policy.

    boto3 retries a request ``max_attempts`` times in all (a blip); a longer outage is the
    job's to wait out, with its own backoff, without holding a worker. A stalled request gives
    up after ``read_timeout`` seconds, well inside a render's time limit.
    Credentials default to the standard AWS chain (environment, config files, instance role).
    """
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        # SigV4 everywhere, presigned URLs too (botocore may presign SigV2 otherwise, which
        # AWS no longer accepts in newer regions).
        signature_version="s3v4",
        connect_timeout=5, read_timeout=read_timeout,
        # Ask for checksums only where the API requires them: several S3-compatible stores
        # reject the aws-chunked trailing checksums boto3 sends by default since 1.36.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = botocore.session.get_session()
    session.register_component("data_loader", Loader(file_loader=ModelsWithoutDocs()))
    return boto3.session.Session(botocore_session=session).client(
        "s3", endpoint_url=endpoint_url, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, config=config,
        region_name=None if endpoint_url is None else "us-east-1")


class ModelsWithoutDocs(JSONFileLoader):
    """botocore's model files, read with their ``documentation`` strings emptied.

    A client keeps its whole service model for life; S3's is mostly prose for ``help()``, about
    5 MB of every worker process. Everything requests are built from is kept.
    """

    def _load_file(self, full_path: str,
                   open_method: Callable[[str, str], IO[bytes]]) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as model:
            payload = model.read()
        return json.loads(payload, object_pairs_hook=_without_docs)


def _without_docs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {key: "" if key == "documentation" else value for key, value in pairs}


def data_client(s3: S3Client) -> Curl:
    """libcurl's PUTs and GETs on the same endpoint and region as ``s3``, signed with its
    credentials (refreshed by botocore when they expire), with its timeouts.

    :class:`S3Store` retries a put or a get itself, by the rules that classify its errors, as
    many times in all as ``s3`` would. libcurl itself only sends a request again, once, when the
    kept-alive connection it went out on was lost before any answer (an idle connection the
    server closed); that costs no attempt.
    """
    config = _options(s3)
    return Curl(s3.meta.endpoint_url, s3.meta.region_name or "us-east-1",
                lambda: _keys(s3), connect_timeout=config["connect_timeout"],
                read_timeout=config["read_timeout"], ca_bundle=_ca_bundle())


def _ca_bundle() -> str:
    """The CA bundle botocore verifies against: AWS_CA_BUNDLE, else its default."""
    return os.environ.get("AWS_CA_BUNDLE") or str(get_cert_path(True))


def _options(s3: S3Client) -> dict[str, Any]:
    """The botocore Config ``s3`` was made with (its options are attributes set at run time)."""
    return dict(vars(s3.meta.config))


def _keys(s3: S3Client) -> Keys:
    """The boto3 client's own credentials, as its signer would use them now."""
    found = s3._get_credentials()  # type: ignore[attr-defined]  # what its signer uses
    if found is None:
        raise NoCredentialsError()
    frozen = found.get_frozen_credentials()
    return Keys(frozen.access_key, frozen.secret_key, frozen.token)


class S3Store:
    """Objects in one bucket, below an optional key prefix."""

    def __init__(self, s3: S3Client, bucket: str, prefix: str = "") -> None:
        self.s3, self.bucket = s3, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.data = data_client(s3)
        self.attempts = int((_options(s3)["retries"] or {}).get("total_max_attempts", 3))

    def put(self, key: str, data: bytes, content_type: str) -> None:
        headers = {"Content-Type": content_type}
        if content_type.startswith("image/"):
            headers["Cache-Control"] = RENDITION_CACHE_CONTROL
        name = self._key(key)
        self._retried(key, lambda: self.data.put(self.bucket, name, data, headers))

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """One GET; with ``max_bytes``, a ranged one that reads at most one byte past it."""
        name = self._key(key)
        data = self._retried(key, lambda: self._read(key, name, max_bytes))
        check_size(key, len(data), max_bytes)
        return data

    def _read(self, key: str, name: str, max_bytes: int | None) -> bytes:
        try:
            got = self.data.get(self.bucket, name, None if max_bytes is None else max_bytes)
        except Answered as exc:
            if exc.code != "InvalidRange":
                raise
            return b""  # a range of an empty object
        if got.total is not None:
            check_size(key, got.total, max_bytes)
        return got.data

    def _retried(self, key: str, call: Callable[[], T]) -> T:
        """``call``, translated; tried again after a transient error, ``attempts`` times in all,
        with botocore's standard backoff (random, up to 2 ** attempt seconds)."""
        for attempt in range(1, self.attempts + 1):
            try:
                with _translated(key):
                    return call()
            except ValueError as exc:  # the bucket's name, checked before a URL is made of it
                raise StorageRejected(f"S3 client set-up: {exc} (check PHOTOPIPE_STORAGE_URL)") \
                    from exc
            except StorageUnavailable:
                if attempt == self.attempts:
                    raise
                time.sleep(random.uniform(0, min(20, 2 ** (attempt - 1))))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def exists(self, key: str) -> bool:
        try:
            with _translated(key):
                self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        with _translated(key):
            self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_many(self, keys: Sequence[str]) -> None:
        """One DeleteObjects request per 1,000 keys (S3's limit); a key it could not delete is
        an error like a failed DELETE."""
        for start in range(0, len(keys), 1000):
            chunk = list(keys[start:start + 1000])
            with _translated(chunk[0]):
                response = self.s3.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self._key(k)} for k in chunk], "Quiet": True})
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageUnavailable(f"S3 did not delete {len(errors)} of {len(chunk)} "
                                         f"objects: {first.get('Code')} on {first.get('Key')}")

    def list(self, prefix: str = "") -> Iterator[str]:
        keys: list[str] = []
        with _translated(prefix):
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                keys += [o["Key"][len(self.prefix):] for o in page.get("Contents", [])]
        return iter(sorted(keys))

    def url(self, key: str, seconds: int) -> str | None:
        """A presigned GET (signed locally by botocore: no request)."""
        return str(self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=seconds))

    def head(self, key: str) -> dict[str, Any]:
        """The object's headers (content type, cache control, length), for tests and tools."""
        with _translated(key):
            response: dict[str, Any] = dict(
                self.s3.head_object(Bucket=self.bucket, Key=self._key(key)))
            return response

    def begin_parts(self, key: str, content_type: str) -> str:
        with _translated(key):
            response = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self._key(key),
                                                       ContentType=content_type)
        return str(response["UploadId"])

    def put_part(self, key: str, upload: str, number: int, data: bytes) -> str:
        check_part(number)
        with _translated(key):
            response = self.s3.upload_part(Bucket=self.bucket, Key=self._key(key),
                                           UploadId=upload, PartNumber=number, Body=data)
        return str(response["ETag"]).strip('"')

    def join_parts(self, key: str, upload: str, parts: Sequence[tuple[int, str]]) -> None:
        with _translated(key):
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{t}"'}
                                           for n, t in parts]})

    def drop_parts(self, key: str, upload: str) -> None:
        """AbortMultipartUpload; an upload already gone is not an error."""
        try:
            with _translated(key):
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key),
                                               UploadId=upload)
        except ObjectNotFound:
            pass

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)


@contextmanager
def _translated(key: str) -> Iterator[None]:
    """Map botocore's exceptions onto photopipe's error tree: not found; throttling, 5xx and
    the network (after boto3's own retries) are transient; credentials, permissions, a missing
    bucket and other refusals are the set-up's fault."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        raise _refusal(key, code, status) from exc
    except Answered as exc:  # libcurl's: an error status, with S3's code when it sent one
        raise _refusal(key, exc.code, exc.status) from exc
    except _CONFIGURATION as exc:
        raise StorageRejected(f"S3 client set-up: {exc} (check the AWS credentials and "
                              "region)") from exc
    except pycurl.error as exc:
        number, message = (*exc.args, 0, "")[:2]
        if number in _CURL_SET_UP:
            raise StorageRejected(f"S3 client set-up: {message} (check "
                                  "PHOTOPIPE_S3_ENDPOINT_URL and AWS_CA_BUNDLE)") from exc
        raise StorageUnavailable(f"S3 unreachable for {key!r}: {message} (curl {number})") \
            from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"S3 unreachable for {key!r}: {exc}") from exc


def _refusal(key: str, code: str, status: int) -> Exception:
    """The error for an S3 answer of ``code`` (may be empty) and HTTP ``status``."""
    if code in _NOT_FOUND:
        return ObjectNotFound(f"no object at {key!r}")
    if code in _TRANSIENT or status == 429 or status >= 500 or _botocore_retries(code, status):
        return StorageUnavailable(f"S3 {code or status} on {key!r}")
    return StorageRejected(f"S3 refused {key!r}: {code or status} (check the bucket, "
                           "the credentials and PHOTOPIPE_S3_ENDPOINT_URL)")


class _Status:
    """What botocore's retry checkers read of an HTTP response: its status."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def _botocore_retries(code: str, status: int) -> bool:
    """Whether botocore's standard retry rules call this error retryable."""
    context = RetryContext(attempt_number=1, parsed_response={"Error": {"Code": code}},
                           http_response=_Status(status) if status else None)
    return bool(_BOTOCORE_RETRIES.is_retryable(context))
