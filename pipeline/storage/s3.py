"""The S3 object store (``s3://bucket/prefix``): AWS, MinIO, Ceph or any S3-compatible store.

The boto3 client is injected (tests point it at moto's server or Ceph's RADOS gateway);
:func:`client` builds the production one: boto3's standard retry mode, bounded timeouts,
credentials from the standard AWS chain. The two calls every photo makes, the PUTs and the GET,
go through MinIO's client instead (:func:`data_client`, made from the boto3 client's endpoint,
region, timeouts, attempts and credentials): it costs a third of boto3's CPU a request (0.6 ms
against 1.7 for a PUT, 0.4 against 1.1 for a GET of a 612x612 photo; ``benchmarks/glue.py``), and
a job makes four of them. Listing, deleting, presigning and multipart stay with boto3.
Neither library's exceptions leave this module: they become :class:`StorageUnavailable` (retry)
or :class:`StorageRejected` / :class:`ObjectNotFound`, by the same rules.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import boto3
import botocore.session
import certifi
import urllib3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.loaders import JSONFileLoader, Loader
from botocore.retries.standard import (
    OrRetryChecker,
    RetryContext,
    ThrottledRetryableChecker,
    TransientRetryableChecker,
)
from minio import Minio
from minio.credentials.credentials import Credentials
from minio.credentials.providers import Provider
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from pipeline.errors import ObjectNotFound, StorageRejected, StorageUnavailable
from pipeline.storage import check_key, check_part, check_size

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
# MinIO's client uploads in parts above its 5 MiB part size; one PUT of every body keeps a put
# atomic and one request, as boto3's put_object is (S3 takes up to 5 GiB in one PUT).
_ONE_PART = 5 * 1024 * 1024
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


def data_client(s3: S3Client) -> Minio:
    """MinIO's client for the same endpoint, region and credentials as ``s3``, with its timeouts.

    urllib3 retries nothing here: :class:`S3Store` retries a put or a get itself, by the rules
    that classify its errors, as many times in all as ``s3`` would.
    """
    endpoint, config = urlsplit(s3.meta.endpoint_url), _options(s3)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=config["connect_timeout"], read=config["read_timeout"]),
        retries=False, maxsize=10, cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("AWS_CA_BUNDLE") or certifi.where())
    return Minio(endpoint.netloc, secure=endpoint.scheme == "https", region=s3.meta.region_name,
                 credentials=_SameCredentials(s3), http_client=http)


def _options(s3: S3Client) -> dict[str, Any]:
    """The botocore Config ``s3`` was made with (its options are attributes set at run time)."""
    return dict(vars(s3.meta.config))


class _SameCredentials(Provider):
    """The boto3 client's own credentials (refreshed by botocore when they expire), so both
    clients sign with what the standard AWS chain found."""

    def __init__(self, s3: S3Client) -> None:
        self.s3 = s3

    def retrieve(self) -> Credentials:
        found = self.s3._get_credentials()  # type: ignore[attr-defined]  # what its signer uses
        if found is None:
            raise NoCredentialsError()
        frozen = found.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


class S3Store:
    """Objects in one bucket, below an optional key prefix."""

    def __init__(self, s3: S3Client, bucket: str, prefix: str = "") -> None:
        self.s3, self.bucket = s3, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.data = data_client(s3)
        self.attempts = int((_options(s3)["retries"] or {}).get("total_max_attempts", 3))

    def put(self, key: str, data: bytes, content_type: str) -> None:
        headers: dict[str, str | list[str] | tuple[str]] | None = \
            {"Cache-Control": RENDITION_CACHE_CONTROL} if content_type.startswith("image/") \
            else None
        name = self._key(key)
        self._retried(key, lambda: self.data.put_object(
            self.bucket, name, io.BytesIO(data), len(data), content_type, headers,
            part_size=max(len(data), _ONE_PART)))

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """One GET; with ``max_bytes``, a ranged one that reads at most one byte past it."""
        name = self._key(key)
        data = self._retried(key, lambda: self._read(key, name, max_bytes))
        check_size(key, len(data), max_bytes)
        return data

    def _read(self, key: str, name: str, max_bytes: int | None) -> bytes:
        try:
            response = self.data.get_object(self.bucket, name, 0,
                                            0 if max_bytes is None else max_bytes + 1)
        except S3Error as exc:
            if exc.code != "InvalidRange":
                raise
            return b""  # a range of an empty object
        try:
            total = str(response.headers.get("Content-Range", "")).rpartition("/")[2]
            if total.isdigit():
                check_size(key, int(total), max_bytes)
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def _retried(self, key: str, call: Callable[[], T]) -> T:
        """``call``, translated; tried again after a transient error, ``attempts`` times in all,
        with botocore's standard backoff (random, up to 2 ** attempt seconds)."""
        for attempt in range(1, self.attempts + 1):
            try:
                with _translated(key):
                    return call()
            except ValueError as exc:  # MinIO checks its arguments: here, the bucket's name
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
    except S3Error as exc:  # MinIO's: an S3 error document
        status = exc.response.status if exc.response is not None else 0
        raise _refusal(key, exc.code or "", status) from exc
    except ServerError as exc:  # MinIO's: a status without an error document
        raise _refusal(key, "", exc.status_code) from exc
    except InvalidResponseError as exc:  # MinIO's: an error answered in something but XML
        raise _refusal(key, "", exc._code) from exc  # its status (it has no public name)
    except _CONFIGURATION as exc:
        raise StorageRejected(f"S3 client set-up: {exc} (check the AWS credentials and "
                              "region)") from exc
    except (BotoCoreError, urllib3.exceptions.HTTPError, MinioException) as exc:
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
