"""The S3 object store (``s3://bucket/prefix``): AWS, MinIO, Ceph or any S3-compatible store.

The boto3 client is injected (tests point it at moto's server or Ceph's RADOS gateway);
:func:`client` builds the production one: boto3's standard retry mode, bounded timeouts,
credentials from the standard AWS chain. botocore's exceptions never leave this module: they
become :class:`StorageUnavailable` (retry) or :class:`StorageRejected` / :class:`ObjectNotFound`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

import boto3
import botocore.session
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


class S3Store:
    """Objects in one bucket, below an optional key prefix."""

    def __init__(self, s3: S3Client, bucket: str, prefix: str = "") -> None:
        self.s3, self.bucket = s3, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        extra: dict[str, Any] = {}
        if content_type.startswith("image/"):
            extra["CacheControl"] = RENDITION_CACHE_CONTROL
        with _translated(key):
            self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                               ContentType=content_type, **extra)

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """One GET; with ``max_bytes``, a ranged one that reads at most one byte past it."""
        extra: dict[str, Any] = {} if max_bytes is None else {"Range": f"bytes=0-{max_bytes}"}
        with _translated(key):
            try:
                response = self.s3.get_object(Bucket=self.bucket, Key=self._key(key), **extra)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                    raise
                return b""  # a range of an empty object
            total = str(response.get("ContentRange", "")).rpartition("/")[2]
            if total.isdigit():
                check_size(key, int(total), max_bytes)
            data = response["Body"].read()
        check_size(key, len(data), max_bytes)
        return data

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
        if code in _NOT_FOUND:
            raise ObjectNotFound(f"no object at {key!r}") from exc
        if code in _TRANSIENT or status == 429 or status >= 500 or \
                _botocore_retries(exc, status):
            raise StorageUnavailable(f"S3 {code or status} on {key!r}") from exc
        raise StorageRejected(f"S3 refused {key!r}: {code or status} (check the bucket, "
                              "the credentials and PHOTOPIPE_S3_ENDPOINT_URL)") from exc
    except _CONFIGURATION as exc:
        raise StorageRejected(f"S3 client set-up: {exc} (check the AWS credentials and "
                              "region)") from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"S3 unreachable for {key!r}: {exc}") from exc


class _Status:
    """What botocore's retry checkers read of an HTTP response: its status."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def _botocore_retries(exc: ClientError, status: int) -> bool:
    """Whether botocore's standard retry rules call this error retryable."""
    context = RetryContext(attempt_number=1, parsed_response=exc.response,
                           http_response=_Status(status) if status else None)
    return bool(_BOTOCORE_RETRIES.is_retryable(context))
