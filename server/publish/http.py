"""The optional `[http]` listener: `GET /metrics` in Prometheus text format, nothing else.

One request per connection (`Connection: close`), so the protocol is a few lines: read up to the
blank line that ends the request head, answer, close. `HttpConnections` bounds how many are open
and how long one may take to send its head, so scrapers cannot hold the daemon's descriptors.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Literal

import msgspec

from logtallyd.publish.config import HttpConfig
from logtallyd.publish.metrics import CONTENT_TYPE

__all__ = ["HttpCloseReason", "HttpConfig", "HttpConnections", "HttpFigures", "MetricsHttp", "respond"]

# Why a connection was closed without an answer to a whole request: keys of `closed_by`.
HttpCloseReason = Literal[
    "max_connections",  # `http.max_connections` were open: closed at once
    "idle_timeout",  # no whole request head within `http.idle_timeout_s`
    "head_too_large",  # a request head past `http.max_head_bytes` (answered 400)
]


class HttpFigures(msgspec.Struct):
    """STATS `http_server` (present while `[http] listen` is set)."""

    open: int
    total: int
    closed_by: dict[str, int]


class HttpConnections:
    """Every open `/metrics` connection: the cap, the idle deadline, the counts."""

    def __init__(self, config: HttpConfig = HttpConfig()) -> None:
        self.config = config
        self.open: set[MetricsHttp] = set()
        self.total = 0
        self.closed_by: dict[str, int] = {}

    def reconfigure(self, config: HttpConfig) -> None:
        """SIGHUP: the new limits apply to the next connection."""
        self.config = config

    def figures(self) -> HttpFigures:
        return HttpFigures(len(self.open), self.total, dict(self.closed_by))

    def closed(self, reason: HttpCloseReason) -> None:
        self.closed_by[reason] = self.closed_by.get(reason, 0) + 1


def respond(head: bytes, metrics: Callable[[], str]) -> bytes:
    """The whole response to one request head (sans-I/O)."""
    request_line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _response(400, "text/plain", b"bad request\n")
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if target != b"/metrics":
        return _response(404, "text/plain", b"only /metrics is served here\n")
    if method not in (b"GET", b"HEAD"):
        return _response(405, "text/plain", b"GET only\n")
    body = metrics().encode()
    return _response(200, CONTENT_TYPE, b"" if method == b"HEAD" else body, len(body))


def _response(status: int, content_type: str, body: bytes, length: int | None = None) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class MetricsHttp(asyncio.Protocol):
    def __init__(self, metrics: Callable[[], str], connections: HttpConnections | None = None) -> None:
        self.metrics = metrics
        self.connections = connections or HttpConnections()
        self.max_head_bytes = self.connections.config.max_head_bytes
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        connections, config = self.connections, self.connections.config
        if len(connections.open) >= config.max_connections:
            connections.closed("max_connections")
            transport.abort()  # type: ignore[attr-defined]
            return
        connections.open.add(self)
        connections.total += 1
        self._idle = asyncio.get_running_loop().call_later(config.idle_timeout_s, self._idle_timeout)

    def _idle_timeout(self) -> None:
        self._idle = None
        self.connections.closed("idle_timeout")
        assert self.transport is not None
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.connections.open.discard(self)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            end = self.buffer.find(b"\n\n")
        # Checked whatever the reads were: a head that arrives whole in one read is no exception.
        if (end if end >= 0 else len(self.buffer)) > self.max_head_bytes:
            self.connections.closed("head_too_large")
            self._answer(_response(400, "text/plain", b"request head too large\n"))
        elif end >= 0:
            self._answer(respond(bytes(self.buffer[:end]), self.metrics))

    def _answer(self, response: bytes) -> None:
        assert self.transport is not None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.transport.write(response)
        self.transport.close()
