"""Reading an upload's body at the door: the byte limit holds while it streams, the first bytes
are sniffed against the decoder's own allow-list, and a client that stalls is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from pipeline.core.decode import sniff
from pipeline.errors import TooLarge
from pipeline.web.errors import BadRequest, BodyTimeout, IncompleteBody, decimal

SNIFF_BYTES = 12  # enough for every signature on the allow-list (RIFF....WEBP)


def declared_length(request: Request, limit: int) -> int | None:
    """The body's declared ``Content-Length``, refused before a byte is read when over
    ``limit``; None when the body is chunked.

    Raises:
        BadRequest: not a number. TooLarge: over the limit.
    """
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not decimal(raw):
        raise BadRequest("Content-Length is not a number of bytes")
    if int(raw) > limit:
        raise TooLarge(f"{raw} bytes is over the limit of {limit}")
    return int(raw)


async def read_upload(request: Request, limit: int, timeout: float, *,
                      sniffed: bool = True) -> bytes:
    """The whole body, at most ``limit`` bytes, each chunk within ``timeout`` seconds (its
    first bytes sniffed unless not ``sniffed``: a chunk of a resumable upload is sniffed by the
    use case, which knows where it lies).

    Raises:
        TooLarge: declared or sent past the limit (reading stops there).
        UnsupportedFormat, Truncated: the first bytes are not a picture photopipe decodes.
        BodyTimeout: the client sent nothing for ``timeout`` seconds.
        IncompleteBody: the body ended short of its declared length, or the client left.
    """
    declared = declared_length(request, limit)
    chunks: list[bytes] = []  # joined once at the end: one copy of the body, not two
    size = 0
    async for chunk in _chunks(request, timeout):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body ran past the limit of {limit} bytes")
        if sniffed and size >= SNIFF_BYTES and size - len(chunk) < SNIFF_BYTES:
            sniff(b"".join(chunks)[:SNIFF_BYTES])
    body = b"".join(chunks)
    if declared is not None and size != declared:
        raise IncompleteBody(f"the body ended after {size} of {declared} bytes")
    if sniffed and size < SNIFF_BYTES:
        sniff(body)
    return body


async def _chunks(request: Request, timeout: float) -> AsyncIterator[bytes]:
    stream = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(timeout):  # no task a chunk, as wait_for would make
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise BodyTimeout(f"no bytes of the body for {timeout:g} s") from exc
        except ClientDisconnect as exc:
            raise IncompleteBody("the client went away mid-body") from exc
        if chunk:
            yield chunk
