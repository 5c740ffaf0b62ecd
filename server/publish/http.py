"""The optional `[http]` listener: `GET /metrics` in Prometheus text format, nothing else.

One request per connection (`Connection: close`), so the protocol is a few lines: read up to the
blank line that ends the request head, answer, close.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from logtallyd.publish.config import HttpConfig
from logtallyd.publish.metrics import CONTENT_TYPE

__all__ = ["HttpConfig", "MetricsHttp", "respond"]


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
    def __init__(self, metrics: Callable[[], str], max_head_bytes: int = HttpConfig().max_head_bytes) -> None:
        self.metrics = metrics
        self.max_head_bytes = max_head_bytes
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            end = self.buffer.find(b"\n\n")
        if end < 0:
            if len(self.buffer) > self.max_head_bytes:
                self.transport.write(_response(400, "text/plain", b"request head too large\n"))
                self.transport.close()
            return
        self.transport.write(respond(bytes(self.buffer[:end]), self.metrics))
        self.transport.close()
