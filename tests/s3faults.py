"""A fault-injecting HTTP proxy for an S3 server (moto's), on loopback.

While ``fault`` is None it forwards every request; otherwise it answers with an S3 error
(``("error", 503, "SlowDown")``), answers a status with a page that is no S3 error document, as a
load balancer in front of S3 does (``("page", 502)``; ``("page", 503, "")``: an empty one),
holds the request without answering (``("stall", seconds)``)
or resets the connection (``("reset",)``), and counts what it injected; with ``times`` set,
only that many requests get the fault, and the rest are forwarded. ``sent`` counts the bytes
of the response bodies it forwarded to photopipe: what crossed the wire.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FaultyS3:
    """``url`` is the endpoint to give photopipe; ``upstream`` the real server."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.fault: tuple[Any, ...] | None = None
        self.times: int | None = None
        self.injected = 0
        self.forwarded = 0
        self.sent = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if (fault := self._take_fault(request)) is not None:
            self._inject(request, fault)
            return
        with self._lock:
            self.forwarded += 1
        upstream = http.client.HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        upstream.request(request.command, request.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        request.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP and key.lower() != "content-length":
                request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if request.command != "HEAD":
            with self._lock:  # counted before it is written: the reader cannot be first
                self.sent += len(data)
            request.wfile.write(data)
        upstream.close()

    def _take_fault(self, request: BaseHTTPRequestHandler) -> tuple[Any, ...] | None:
        """The fault this request gets, if any (listing buckets at ``/`` never gets one)."""
        with self._lock:
            fault = self.fault
            if fault is None or request.path == "/" or request.path.startswith("/?") or \
                    self.times == 0:
                return None
            self.injected += 1
            if self.times is not None:
                self.times -= 1
            return fault

    @staticmethod
    def _inject(request: BaseHTTPRequestHandler, fault: tuple[Any, ...]) -> None:
        kind = fault[0]
        if kind == "error":
            status, code = fault[1], fault[2]
            body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                    f"<Message>injected</Message></Error>").encode()
            request.send_response(status)
            request.send_header("Content-Type", "application/xml")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            if request.command != "HEAD":
                request.wfile.write(body)
        elif kind == "page":
            page = (fault[2] if len(fault) > 2 else "<html><h1>Bad gateway</h1></html>").encode()
            request.send_response(fault[1])
            request.send_header("Content-Type", "text/html" if page else "application/xml")
            request.send_header("Content-Length", str(len(page)))
            request.end_headers()
            if request.command != "HEAD":
                request.wfile.write(page)
        elif kind == "stall":
            time.sleep(fault[1])
            request.close_connection = True
        elif kind == "reset":
            sock: socket.socket = request.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close_connection = True
            sock.close()
