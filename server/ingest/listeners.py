"""Ingest listeners: thin asyncio Protocols that feed the framer and hand frames to the pipeline.

TCP (plain or TLS, RFC 5425) gets one `Framer` per connection; UDP is one datagram = one message
(RFC 5426). Flow control is `pause_reading()`/`resume_reading()` on every TCP transport at once
(pipeline pressure) or on one (its peer's line rate, `logtallyd.ingest.peers`).
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Literal

import msgspec
import structlog

from logtallyd.ingest.config import IngestConfig
from logtallyd.ingest.framing import Delimiter, FrameError, Framer, framing_names
from logtallyd.ingest.peers import Peer, Peers
from logtallyd.ingest.udpdrops import socket_drops
from logtallyd.ingest.pipeline import Pipeline
from logtallyd.ratelog import RateLimitedLog, RateLimiter

log = structlog.get_logger()

# Why a connection was closed before it could send a line: the keys of STATS `connections.refused_by`.
RefusalReason = Literal[
    "max_connections",  # `ingest.max_connections` open (TLS handshakes included)
    "max_connections_per_peer",  # `ingest.max_connections_per_peer` open from its address
    "handshake_timeout",  # TLS handshake not done within `ingest.tls.handshake_timeout_s`
    "handshake_failed",  # TLS handshake failed: no client certificate, an untrusted one, not TLS...
    "client_not_allowed",  # a valid client certificate whose names are not in `ingest.tls.allowed_clients`
]


class ConnectionFigures(msgspec.Struct):
    """STATS `connections`: `open` includes those still in their TLS handshake (`handshaking`);
    `refused` is the sum of `refused_by`."""

    open: int
    total: int
    refused: int
    idle_closed: int
    handshaking: int
    refused_by: dict[str, int]


class Connections:
    """Every open ingest connection: limits, counts, pause/resume, idle sweep, shutdown."""

    def __init__(self, max_connections: int, idle_timeout_s: float, max_message_bytes: int,
                 sample_bytes: int = 256, log_limiter: RateLimiter | None = None,
                 delimiter: Delimiter = "learn",
                 max_per_peer: int | None = None, peers: Peers | None = None) -> None:
        self.max_connections = max_connections
        self.max_per_peer = max_connections if max_per_peer is None else max_per_peer
        self.idle_timeout_s = idle_timeout_s
        self.max_message_bytes = max_message_bytes
        self.sample_bytes = sample_bytes
        self.delimiter = delimiter
        self.peers = peers or Peers(10_000, 0.0, 1, 0)
        self.open: set[TcpIngest] = set()
        self.total = 0
        self.refused_by: dict[str, int] = {}
        self.idle_closed = 0
        self.handshaking = 0
        self.paused = False
        # Connection events within a budget per kind (`[log] connection_events_per_interval`): a
        # connect flood must not flood the journal (the rest are counted by a `log_suppressed` line).
        self.log = RateLimitedLog(log_limiter or RateLimiter())
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    def figures(self) -> ConnectionFigures:
        return ConnectionFigures(len(self.open), self.total, sum(self.refused_by.values()), self.idle_closed,
                                 self.handshaking, dict(self.refused_by))

    def reconfigure(self, ingest: IngestConfig) -> None:
        """SIGHUP: new limits apply to the next connection and the next sweep; a new line rate to
        every peer's next read."""
        self.max_connections = ingest.max_connections
        self.max_per_peer = ingest.max_connections_per_peer
        self.idle_timeout_s = ingest.idle_timeout_s
        self.max_message_bytes = ingest.max_message_bytes
        self.delimiter = ingest.delimiter
        self.peers.reconfigure(ingest.max_peers, ingest.peer_lines_per_s, ingest.peer_burst_lines, ingest.peer_report,
                               ingest.sender_hostnames)

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
            # A connection held back (its handshake, or its peer's line rate) is not idle by its own doing.
            if conn.held:
                continue
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

    def refuse(self, reason: RefusalReason) -> None:
        self.refused_by[reason] = self.refused_by.get(reason, 0) + 1

    def _added(self, conn: TcpIngest, host: str) -> RefusalReason | None:
        """Admit `conn` (None), or the reason it is refused (counted)."""
        reason: RefusalReason | None = None
        if len(self.open) >= self.max_connections:
            reason = "max_connections"
        else:
            row = self.peers.table.get(host)
            if row is not None and row.connections >= self.max_per_peer:
                reason = "max_connections_per_peer"
        if reason is not None:
            self.refuse(reason)
            return reason
        conn.row = self.peers.get(host, time.monotonic(), connecting=True, wall=time.time())
        self.open.add(conn)
        self.total += 1
        self._all_closed.clear()
        return None

    def _removed(self, conn: TcpIngest) -> None:
        self.open.discard(conn)
        self.peers.disconnected(conn.row)
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
        self.row: Peer  # set when admitted
        self.lines = 0
        self.last_active = time.monotonic()
        self._reading = True
        self._pressed = False  # the pipeline's pressure pause
        self._rate_hold: asyncio.TimerHandle | None = None  # the peer's line rate pause
        self._accepted = False

    @property
    def held(self) -> bool:
        return self._rate_hold is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admit(transport):
            self._opened()
            if not self._reading:
                # uvloop starts reading once `connection_made` returns, whatever pause_reading()
                # said in it: a connection accepted while the pipeline is paused would read its
                # sender's whole backlog past `max_buffered_bytes`. Pause it again just after.
                asyncio.get_running_loop().call_soon(self._pause_again)

    def _pause_again(self) -> None:
        if not self._reading and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def _admit(self, transport: asyncio.BaseTransport) -> bool:
        self.transport = transport  # type: ignore[assignment]
        addr = transport.get_extra_info("peername")
        self.peer = _peer_name(addr)
        reason = self.connections._added(self, _host(addr))
        if reason is not None:
            self.connections.log.log("warning", "connection_refused", peer=self.peer, reason=reason)
            transport.abort()  # type: ignore[attr-defined]
            return False
        self._accepted = True
        return True

    def _opened(self) -> None:
        self.connections.log.log("info", "connection_opened", peer=self.peer, listener=self.listener)
        self._pressed = self.connections.paused
        self._apply()

    def data_received(self, data: bytes) -> None:
        self.last_active = now = time.monotonic()
        frames, errors = self.framer.feed(data)
        n = self._deliver(frames, errors)
        # The sender's figures per read, not per line.
        row = self.row
        row.received(n, len(data), now, time.time())
        row.framing |= self.framer.seen
        self.connections.peers.table.move_to_end(row.host)  # seen now: the last to be evicted
        # Charged per read, not per line: the lines are in, the sender waits out the debt.
        if n and self.row.bucket.rate > 0:
            delay = self.row.bucket.charge(n, now)
            if delay > 0 and self._rate_hold is None:
                self.row.rate_pauses += 1
                self.connections.log.log("info", "peer_rate_paused", peer=self.peer, pause_s=round(delay, 3))
                self._rate_hold = asyncio.get_running_loop().call_later(delay, self._rate_release)
                self._apply()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._accepted:
            return
        if self._rate_hold is not None:
            self._rate_hold.cancel()
            self._rate_hold = None
        frames, errors = self.framer.close()
        n = self._deliver(frames, errors)
        self.row.lines += n
        self.connections._removed(self)
        self.connections.log.log(
            "info", "connection_closed", peer=self.peer, lines=self.lines, error=str(exc) if exc else None,
            framing=framing_names(self.framer.seen),
        )

    def _deliver(self, frames: list[bytes], errors: list[FrameError]) -> int:
        if frames:
            self.pipeline.submit(frames, self.peer, self.listener)
        if errors:
            self.pipeline.reject_frames(errors, self.peer)
        n = len(frames) + len(errors)
        self.lines += n
        return n

    def _rate_release(self) -> None:
        self._rate_hold = None
        self.last_active = time.monotonic()
        self._apply()

    def pause(self) -> None:
        self._pressed = True
        self._apply()

    def resume(self) -> None:
        self._pressed = False
        self._apply()

    def _apply(self) -> None:
        """Read while neither the pipeline nor the peer's rate holds this connection back."""
        reading = not self._pressed and self._rate_hold is None
        if reading != self._reading and self.transport is not None and not self.transport.is_closing():
            self._reading = reading
            if reading:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()


class TlsIngest(TcpIngest):
    """RFC 5425: the TCP connection is admitted (and counted against `max_connections`) at accept,
    and TLS runs here over memory BIOs, so a handshake that fails, stalls or shows a client outside
    the allow-list is closed and counted by reason, and flow control stays on the TCP transport."""

    def __init__(self, connections: Connections, pipeline: Pipeline, context: ssl.SSLContext,
                 handshake_timeout_s: float, allowed_clients: frozenset[str] = frozenset()) -> None:
        super().__init__(connections, pipeline, "tls")
        self.context = context
        self.handshake_timeout_s = handshake_timeout_s
        self.allowed_clients = allowed_clients
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls: ssl.SSLObject | None = None
        self._handshaking = False
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def held(self) -> bool:
        return self._handshaking or self._rate_hold is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admit(transport):
            self.connections.handshaking += 1
            self._handshaking = True
            self._tls = self.context.wrap_bio(self._incoming, self._outgoing, server_side=True)
            self._deadline = asyncio.get_running_loop().call_later(self.handshake_timeout_s, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if not self._accepted:
            return
        assert self._tls is not None and self.transport is not None
        self._incoming.write(data)
        if self._handshaking:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return
            except ssl.SSLError as exc:  # no certificate, one `client_ca` did not sign, not TLS at all...
                self._flush()  # the alert tells the client why
                self._refuse("handshake_failed", str(exc))
                return
            self._flush()
            if not self._handshake_done():
                return
        chunks: list[bytes] = []
        closing = False
        try:
            while chunk := self._tls.read(1 << 17):
                chunks.append(chunk)
            closing = True  # close_notify
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            closing = True
        except ssl.SSLError as exc:
            closing = True
            self.connections.log.log("warning", "tls_error", peer=self.peer, error=str(exc))
        self._flush()
        if chunks:
            super().data_received(b"".join(chunks))
        if closing:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshaking:
            self._refuse("handshake_failed", str(exc) if exc else "connection closed in the handshake")
        super().connection_lost(exc)

    def _flush(self) -> None:
        assert self.transport is not None
        if self._outgoing.pending:
            self.transport.write(self._outgoing.read())

    def _handshake_done(self) -> bool:
        """Check the client's names; True when the connection opens."""
        assert self._tls is not None
        self._end_handshake()
        names = client_names(self._tls.getpeercert())
        if names:
            self.row.tls_client = names  # SENDERS shows who the certificate says it is
        if self.allowed_clients:
            if not self.allowed_clients.intersection(names):
                self._refuse("client_not_allowed", None, names)
                return False
        self._opened()
        return True

    def _timed_out(self) -> None:
        self._deadline = None
        self._refuse("handshake_timeout", None, abort=True)

    def _end_handshake(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._handshaking:
            self._handshaking = False
            self.connections.handshaking -= 1

    def _refuse(self, reason: RefusalReason, error: str | None, names: list[str] | None = None,
                abort: bool = False) -> None:
        self._end_handshake()
        if not self._accepted:
            return
        self._accepted = False  # connection_lost has nothing left to undo
        self.connections.refuse(reason)
        self.connections._removed(self)
        self.connections.log.log("warning", "connection_refused", peer=self.peer, reason=reason,
                                 error=error, client=names or None)
        assert self.transport is not None
        if abort:
            self.transport.abort()
        else:
            self.transport.close()


def client_names(peercert: dict | None) -> list[str]:
    """The subject CNs and DNS subjectAltNames of a verified client certificate (`getpeercert()`)."""
    if not peercert:
        return []
    names = [value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"]
    names += [value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"]
    return names


class UdpIngest(asyncio.DatagramProtocol):
    """RFC 5426: one datagram carries one message; a trailing LF/NUL some senders add is dropped."""

    def __init__(self, pipeline: Pipeline, max_message_bytes: int, sample_bytes: int = 256,
                 peers: Peers | None = None) -> None:
        self.pipeline = pipeline
        self.max_message_bytes = max_message_bytes
        self.sample_bytes = sample_bytes
        self.peers = peers or Peers(10_000, 0.0, 1, 0)
        self.datagrams = 0
        self.sock: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sock = transport.get_extra_info("socket")

    def kernel_drops(self) -> int:
        return (socket_drops(self.sock) or 0) if self.sock is not None else 0

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        self.datagrams += 1
        peer = _peer_name(addr)
        now = time.monotonic()
        wall = time.time()
        row = self.peers.get(_host(addr), now, wall=wall)
        row.received(1, len(data), now, wall)
        if not row.bucket.take(now):  # a datagram cannot wait: past its peer's rate it is counted out
            row.rate_dropped += 1
            self.pipeline.reject_line("rate_limited", len(data), data[: self.sample_bytes], peer)
            return
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


def _host(addr: object) -> str:
    """The source address without its port: what per-peer limits count by."""
    if isinstance(addr, tuple) and addr:
        return str(addr[0])
    return str(addr) if addr else "?"


def _peer_name(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr) if addr else "?"
