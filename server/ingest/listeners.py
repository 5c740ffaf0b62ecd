"""Ingest listeners: thin asyncio Protocols that feed the framer and hand frames to the pipeline.

TCP (plain or TLS, RFC 5425) gets one `Framer` per connection; UDP is one datagram = one message
(RFC 5426). Flow control is `pause_reading()`/`resume_reading()` on every TCP transport at once.
"""
from __future__ import annotations

import asyncio
import socket
import time

import msgspec
import structlog

from logtallyd.ingest.config import IngestConfig
from logtallyd.ingest.framing import Delimiter, FrameError, Framer
from logtallyd.ingest.udpdrops import socket_drops
from logtallyd.ingest.pipeline import Pipeline
from logtallyd.ratelog import RateLimitedLog, RateLimiter

log = structlog.get_logger()


class ConnectionFigures(msgspec.Struct):
    """STATS `connections`."""

    open: int
    total: int
    refused: int
    idle_closed: int


class Connections:
    """Every open ingest connection: limits, counts, pause/resume, idle sweep, shutdown."""

    def __init__(self, max_connections: int, idle_timeout_s: float, max_message_bytes: int,
                 sample_bytes: int = 256, log_limiter: RateLimiter | None = None,
                 delimiter: Delimiter = "learn") -> None:
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.max_message_bytes = max_message_bytes
        self.sample_bytes = sample_bytes
        self.delimiter = delimiter
        self.open: set[TcpIngest] = set()
        self.total = 0
        self.refused = 0
        self.idle_closed = 0
        self.paused = False
        # Connection events within a budget per kind (`[log] connection_events_per_interval`): a
        # connect flood must not flood the journal (the rest are counted by a `log_suppressed` line).
        self.log = RateLimitedLog(log_limiter or RateLimiter())
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    def figures(self) -> ConnectionFigures:
        return ConnectionFigures(len(self.open), self.total, self.refused, self.idle_closed)

    def reconfigure(self, ingest: IngestConfig) -> None:
        """SIGHUP: new limits apply to the next connection and the next sweep."""
        self.max_connections = ingest.max_connections
        self.idle_timeout_s = ingest.idle_timeout_s
        self.max_message_bytes = ingest.max_message_bytes
        self.delimiter = ingest.delimiter

    def pause(self) -> None:
        self.paused = True
        for conn in self.open:
            conn.pause()

    def resume(self) -> None:
        self.paused = False
        for conn in self.open:
            conn.resume()

    def sweep_idle(self, now: float) -> None:
        if self.idle_timeout_s <= 0:
            return
        for conn in list(self.open):
            if now - conn.last_active > self.idle_timeout_s and not self.paused:
                self.idle_closed += 1
                self.log.log("info", "connection_idle_closed", peer=conn.peer,
                             idle_s=round(now - conn.last_active, 1))
                conn.transport.close()  # type: ignore[union-attr]

    async def wait_closed(self, timeout: float) -> None:
        """Let open senders finish (shutdown); half-close what is still open after `timeout`."""
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout)
        except asyncio.TimeoutError:
            for conn in list(self.open):
                conn.transport.close()  # type: ignore[union-attr]
            await self._all_closed.wait()

    def _added(self, conn: TcpIngest) -> bool:
        if len(self.open) >= self.max_connections:
            self.refused += 1
            return False
        self.open.add(conn)
        self.total += 1
        self._all_closed.clear()
        return True

    def _removed(self, conn: TcpIngest) -> None:
        self.open.discard(conn)
        if not self.open:
            self._all_closed.set()


class TcpIngest(asyncio.Protocol):
    def __init__(self, connections: Connections, pipeline: Pipeline, listener: str = "tcp") -> None:
        self.connections = connections
        self.pipeline = pipeline
        self.listener = listener  # "tcp" or "tls": picks `[listeners.NAME.parse]`
        self.framer = Framer(connections.max_message_bytes, connections.sample_bytes, connections.delimiter)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.lines = 0
        self.last_active = time.monotonic()
        self._reading = True
        self._accepted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = _peer_name(transport.get_extra_info("peername"))
        if not self.connections._added(self):
            self.connections.log.log("warning", "connection_refused", peer=self.peer, reason="max_connections")
            transport.abort()  # type: ignore[attr-defined]
            return
        self._accepted = True
        self.connections.log.log("info", "connection_opened", peer=self.peer, listener=self.listener)
        if self.connections.paused:
            self.pause()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        frames, errors = self.framer.feed(data)
        self._deliver(frames, errors)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._accepted:
            return
        frames, errors = self.framer.close()
        self._deliver(frames, errors)
        self.connections._removed(self)
        self.connections.log.log(
            "info", "connection_closed", peer=self.peer, lines=self.lines, error=str(exc) if exc else None
        )

    def _deliver(self, frames: list[bytes], errors: list[FrameError]) -> None:
        if frames:
            self.lines += len(frames)
            self.pipeline.submit(frames, self.peer, self.listener)
        if errors:
            self.lines += len(errors)
            self.pipeline.reject_frames(errors, self.peer)

    def pause(self) -> None:
        if self._reading and self.transport is not None and not self.transport.is_closing():
            self._reading = False
            self.transport.pause_reading()

    def resume(self) -> None:
        if not self._reading and self.transport is not None and not self.transport.is_closing():
            self._reading = True
            self.transport.resume_reading()


class UdpIngest(asyncio.DatagramProtocol):
    """RFC 5426: one datagram carries one message; a trailing LF/NUL some senders add is dropped."""

    def __init__(self, pipeline: Pipeline, max_message_bytes: int, sample_bytes: int = 256) -> None:
        self.pipeline = pipeline
        self.max_message_bytes = max_message_bytes
        self.sample_bytes = sample_bytes
        self.datagrams = 0
        self.sock: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sock = transport.get_extra_info("socket")

    def kernel_drops(self) -> int:
        return (socket_drops(self.sock) or 0) if self.sock is not None else 0

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        self.datagrams += 1
        peer = _peer_name(addr)
        if len(data) > self.max_message_bytes:
            self.pipeline.reject_frames([FrameError("oversize", len(data), data[: self.sample_bytes])], peer)
            return
        if data.endswith(b"\n") or data.endswith(b"\0"):
            data = data[:-1]
            if data.endswith(b"\r"):
                data = data[:-1]
        self.pipeline.submit([data], peer, "udp")

    def error_received(self, exc: Exception) -> None:
        log.warning("udp_error", error=str(exc))


def _peer_name(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr) if addr else "?"
