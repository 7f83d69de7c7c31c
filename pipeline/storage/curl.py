"""The S3 PUTs and GETs every photo makes, over libcurl (pycurl).

libcurl signs each request itself (SigV4, ``CURLOPT_AWS_SIGV4``: over plain HTTP the body's
SHA-256 is signed, as S3 asks) and does the HTTP in C; a request costs the calling process a
third of the CPU MinIO's client took for it (``benchmarks/glue.py``), and a job makes four. One
connection is kept per process and thread (a handle is never shared across a fork or between
threads). Nothing here classifies: :mod:`pipeline.storage.s3` turns ``pycurl.error`` (the
network) and :class:`Answered` (an S3 error answer) into photopipe's errors, by the same rules
as boto3's.
"""

from __future__ import annotations

import io
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pycurl

# S3's bucket names (3 to 63 lower-case letters, digits, dots and hyphens, a letter or a digit
# at each end): anything else would change what the URL means.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CODE = re.compile(rb"<Code>([^<]{1,128})</Code>")
_RANGE = b"content-range:"
# libcurl hands the body over in pieces of this size: a 12 MP original in a few calls.
_BUFFER = 512 * 1024


@dataclass(frozen=True)
class Keys:
    """What a request is signed with."""

    access_key: str
    secret_key: str
    token: str | None = None


class Answered(Exception):
    """S3 answered with an error status; ``code`` is its error document's, or empty."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"S3 answered {status} {code}".rstrip())
        self.status, self.code = status, code


@dataclass(frozen=True)
class Got:
    """A GET's body, and the object's whole size when the answer was a range of it."""

    data: bytes
    total: int | None


class Curl:
    """PUT and GET of whole objects on one S3 endpoint: path-style URLs, except on AWS's own
    endpoints, where a bucket whose name allows it is addressed as its own host."""

    def __init__(self, endpoint: str, region: str, keys: Callable[[], Keys], *,
                 connect_timeout: float, read_timeout: float, ca_bundle: str) -> None:
        parts = urlsplit(endpoint)
        self.scheme, self.host = parts.scheme or "https", parts.netloc
        self.virtual = self.host.endswith(".amazonaws.com")
        self.region, self.keys = region, keys
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.ca_bundle = ca_bundle
        self._local = threading.local()

    def put(self, bucket: str, name: str, data: bytes, headers: Mapping[str, str]) -> None:
        """Store ``data`` at ``name``: one request, whatever its size."""
        handle = self._request(bucket, name, headers)
        handle.setopt(pycurl.CUSTOMREQUEST, "PUT")
        handle.setopt(pycurl.POSTFIELDS, data)
        _answer(handle)

    def get(self, bucket: str, name: str, last_byte: int | None = None) -> Got:
        """The object at ``name``; with ``last_byte``, only its bytes up to that one."""
        ranged = {} if last_byte is None else {"Range": f"bytes=0-{last_byte}"}
        handle = self._request(bucket, name, ranged)
        total: list[int] = []
        if last_byte is not None:
            handle.setopt(pycurl.HEADERFUNCTION, lambda line: _total(line, total))
        return Got(_answer(handle), total[0] if total else None)

    def _request(self, bucket: str, name: str, headers: Mapping[str, str]) -> pycurl.Curl:
        """This thread's handle, set for a request on ``name`` with ``headers``, signed."""
        keys = self.keys()
        handle = self._handle()
        handle.reset()
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)  # S3 has no other
        handle.setopt(pycurl.URL, self._url(bucket, name))
        handle.setopt(pycurl.AWS_SIGV4, f"aws:amz:{self.region}:s3")
        handle.setopt(pycurl.USERPWD, f"{keys.access_key}:{keys.secret_key}")
        lines = [f"{key}: {value}" for key, value in headers.items()]
        if keys.token:
            lines.append(f"x-amz-security-token: {keys.token}")
        # no "Expect: 100-continue" wait before a body over 1 MB: a PUT is one round trip
        handle.setopt(pycurl.HTTPHEADER, [*lines, "Expect:"])
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(self.connect_timeout * 1000)))
        # a stall: less than a byte a second, in either direction, for read_timeout seconds
        handle.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        handle.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(self.read_timeout)))
        handle.setopt(pycurl.BUFFERSIZE, _BUFFER)
        handle.setopt(pycurl.CAINFO, self.ca_bundle)
        return handle

    def _handle(self) -> pycurl.Curl:
        """This process's and thread's handle (and its kept-alive connection)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.handle, local.pid = pycurl.Curl(), os.getpid()
        handle: pycurl.Curl = local.handle
        return handle

    def _url(self, bucket: str, name: str) -> str:
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}")
        path = quote(name, safe="/~")
        if self.virtual and "." not in bucket:
            return f"{self.scheme}://{bucket}.{self.host}/{path}"
        return f"{self.scheme}://{self.host}/{bucket}/{path}"


def _answer(handle: pycurl.Curl) -> bytes:
    """Perform the request; return the answer's body. Raises pycurl.error (the network) or
    :class:`Answered` (an error status, with the code of S3's error document if it sent one)."""
    body = io.BytesIO()
    handle.setopt(pycurl.WRITEDATA, body)
    handle.perform()
    status = int(handle.getinfo(pycurl.RESPONSE_CODE))
    if status >= 300:
        found = _CODE.search(body.getbuffer()[:65536])
        raise Answered(status, found.group(1).decode("utf-8", "replace") if found else "")
    return body.getvalue()


def _total(line: bytes, total: list[int]) -> None:
    """The object's size from a ranged answer's ``Content-Range: bytes 0-N/TOTAL``."""
    if line[:len(_RANGE)].lower() == _RANGE:
        size = line.rpartition(b"/")[2].strip()
        if size.isdigit():
            total.append(int(size))
