"""Per-peer limits, sans-I/O: a token bucket per source address and the bounded table that holds them.

The listeners hand in the clock and act on the answers: TCP pauses a connection's reads for
`Bucket.charge`'s delay (backpressure, nothing lost); UDP drops a datagram `Bucket.take` refuses
and counts it `rate_limited`. STATS `peers` is `Peers.figures()`.
"""
from __future__ import annotations

import collections
import heapq

import msgspec


class Bucket:
    """Lines per second with a burst allowance (a token bucket that may go into debt)."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate  # 0 = unlimited
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def charge(self, n: int, now: float) -> float:
        """Take `n` lines that have already arrived; the seconds until the debt is repaid (0 = none).

        A stream cannot un-read lines, so they are taken in full and the sender waits instead.
        """
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        self.tokens -= n
        return -self.tokens / self.rate if self.tokens < 0 else 0.0

    def take(self, now: float) -> bool:
        """One line if a token is there (a datagram is dropped, not delayed, when none is)."""
        if self.rate <= 0:
            return True
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class PeerFigures(msgspec.Struct):
    """One row of STATS `peers.top`."""

    peer: str
    lines: int
    connections: int
    rate_pauses: int
    rate_dropped: int


class PeersFigures(msgspec.Struct):
    """STATS `peers`: `top` by lines, counted since the peer entered the table (`evicted` says how
    many left it, so their lines are no longer in any row)."""

    tracked: int
    evicted: int
    top: list[PeerFigures]


class Peer:
    """A source address: its open connections, its lines and its bucket."""

    __slots__ = ("host", "lines", "connections", "rate_pauses", "rate_dropped", "bucket")

    def __init__(self, host: str, bucket: Bucket) -> None:
        self.host = host
        self.lines = 0
        self.connections = 0
        self.rate_pauses = 0
        self.rate_dropped = 0
        self.bucket = bucket

    def figures(self) -> PeerFigures:
        return PeerFigures(self.host, self.lines, self.connections, self.rate_pauses, self.rate_dropped)


class Peers:
    """At most `max_peers` peers without an open connection (least recently seen leave first); peers
    with one stay, and those are bounded by `ingest.max_connections`."""

    def __init__(self, max_peers: int, lines_per_s: float, burst_lines: int, report: int) -> None:
        self.max_peers = max_peers
        self.lines_per_s = lines_per_s
        self.burst_lines = burst_lines
        self.report = report
        self.table: collections.OrderedDict[str, Peer] = collections.OrderedDict()
        self.pinned = 0  # rows with an open connection
        self.evicted = 0

    def reconfigure(self, max_peers: int, lines_per_s: float, burst_lines: int, report: int) -> None:
        self.max_peers, self.report = max_peers, report
        if (lines_per_s, burst_lines) != (self.lines_per_s, self.burst_lines):
            self.lines_per_s, self.burst_lines = lines_per_s, burst_lines
            for peer in self.table.values():
                peer.bucket.rate, peer.bucket.burst = lines_per_s, burst_lines
                peer.bucket.tokens = min(peer.bucket.tokens, burst_lines)
        self._evict()

    def get(self, host: str, now: float, connecting: bool = False) -> Peer:
        """The peer's row, made on first sight; seeing it makes it the most recent. `connecting`
        counts a connection it opens (`disconnected` undoes it)."""
        peer = self.table.get(host)
        if peer is None:
            peer = self.table[host] = Peer(host, Bucket(self.lines_per_s, self.burst_lines, now))
        else:
            self.table.move_to_end(host)
        if connecting:
            peer.connections += 1
            self.pinned += peer.connections == 1
        self._evict()
        return peer

    def disconnected(self, peer: Peer) -> None:
        peer.connections -= 1
        self.pinned -= peer.connections == 0
        self._evict()

    def _evict(self) -> None:
        # Past the bound there is a row without a connection; rows pinned by one are moved to the
        # back on the way to it.
        while len(self.table) > max(self.max_peers, self.pinned):
            host, peer = next(iter(self.table.items()))
            if peer.connections > 0:
                self.table.move_to_end(host)
                continue
            del self.table[host]
            self.evicted += 1

    def figures(self) -> PeersFigures:
        top = heapq.nlargest(self.report, self.table.values(), key=lambda p: p.lines) if self.report else []
        return PeersFigures(len(self.table), self.evicted, [p.figures() for p in top])
