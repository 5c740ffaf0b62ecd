"""The per-sender table, sans-I/O: per source address a token bucket and its health figures.

The listeners hand in the clock and act on the answers: TCP pauses a connection's reads for
`Bucket.charge`'s delay (backpressure, nothing lost); UDP drops a datagram `Bucket.take` refuses
and counts it `rate_limited`. STATS `peers` is `Peers.figures()`, SENDERS is `Peers.senders()`.
"""
from __future__ import annotations

import collections
import heapq
import math

from logtallyd.ingest.framing import framing_names

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


# Time constants of a sender's two exponentially weighted line rates (SENDERS `rate_per_s`,
# `baseline_per_s`): the recent rate against the sender's usual one.
RATE_TAU_S = 10.0
BASELINE_TAU_S = 600.0


class SenderRow(msgspec.Struct):
    """One row of SENDERS. Times are Unix seconds; the rates are exponentially weighted (time
    constants `RATE_TAU_S`, `BASELINE_TAU_S`), so they are estimates; every count is exact since
    the sender entered the table."""

    peer: str
    hostnames: list[str]  # the record host fields it claims, the first `ingest.sender_hostnames`
    hostnames_truncated: bool  # it claimed more than those
    first_seen: float
    last_seen: float
    lines: int
    bytes: int
    rate_per_s: float
    baseline_per_s: float
    framing: list[str]  # "octet_counted", "lf", "nul": what its TCP streams used
    connections: int  # open now
    rejected: dict[str, int]  # by reason
    reject_ratio: float  # rejected / lines
    oversize: int
    tls_client: list[str] | None  # the subject CN and DNS names of its TLS client certificate


class SendersAnswer(msgspec.Struct):
    """SENDERS: the table's rows, most recently seen first; `evicted` senders left it (bound
    `ingest.max_peers`), so their lines are in no row."""

    tracked: int
    evicted: int
    senders: list[SenderRow]


class PeersFigures(msgspec.Struct):
    """STATS `peers`: `top` by lines, counted since the peer entered the table (`evicted` says how
    many left it, so their lines are no longer in any row)."""

    tracked: int
    evicted: int
    top: list[PeerFigures]


class Peer:
    """A source address: its open connections, its lines and its bucket, and how it is doing."""

    __slots__ = ("host", "lines", "connections", "rate_pauses", "rate_dropped", "bucket", "bytes",
                 "first_seen", "last_seen", "framing", "rejected", "hostnames", "hostnames_truncated",
                 "tls_client", "rate", "baseline", "_rate_at")

    def __init__(self, host: str, bucket: Bucket, wall: float = 0.0) -> None:
        self.host = host
        self.lines = 0
        self.connections = 0
        self.rate_pauses = 0
        self.rate_dropped = 0
        self.bucket = bucket
        self.bytes = 0
        self.first_seen = self.last_seen = wall
        self.framing = 0  # `Framer.seen` bits of its streams
        self.rejected: dict[str, int] = {}
        self.hostnames: list[str] = []
        self.hostnames_truncated = False
        self.tls_client: list[str] | None = None
        self.rate = 0.0  # lines/s, time constant RATE_TAU_S, as of `_rate_at`
        self.baseline = 0.0  # lines/s, time constant BASELINE_TAU_S
        self._rate_at = bucket.stamp

    def received(self, lines: int, nbytes: int, now: float, wall: float) -> None:
        """One read or datagram: `now` is the monotonic clock, `wall` the Unix time."""
        self.lines += lines
        self.bytes += nbytes
        self.last_seen = wall
        self._decay(now)
        self.rate += lines / RATE_TAU_S
        self.baseline += lines / BASELINE_TAU_S

    def _decay(self, now: float) -> None:
        dt = now - self._rate_at
        if dt > 0:
            self.rate *= math.exp(-dt / RATE_TAU_S)
            self.baseline *= math.exp(-dt / BASELINE_TAU_S)
            self._rate_at = now

    def claim(self, names: list[str], limit: int) -> None:
        for name in names:
            if name not in self.hostnames:
                if len(self.hostnames) < limit:
                    self.hostnames.append(name)
                else:
                    self.hostnames_truncated = True

    def figures(self) -> PeerFigures:
        return PeerFigures(self.host, self.lines, self.connections, self.rate_pauses, self.rate_dropped)

    def row(self, now: float) -> SenderRow:
        self._decay(now)
        rejected = sum(self.rejected.values())
        return SenderRow(
            self.host, list(self.hostnames), self.hostnames_truncated, self.first_seen, self.last_seen,
            self.lines, self.bytes, round(self.rate, 3), round(self.baseline, 3), framing_names(self.framing),
            self.connections, dict(sorted(self.rejected.items())),
            round(rejected / self.lines, 6) if self.lines else 0.0, self.rejected.get("oversize", 0),
            self.tls_client,
        )


class Peers:
    """At most `max_peers` peers without an open connection (least recently seen leave first); peers
    with one stay, and those are bounded by `ingest.max_connections`."""

    def __init__(self, max_peers: int, lines_per_s: float, burst_lines: int, report: int,
                 max_hostnames: int = 8) -> None:
        self.max_peers = max_peers
        self.max_hostnames = max_hostnames
        self.lines_per_s = lines_per_s
        self.burst_lines = burst_lines
        self.report = report
        self.table: collections.OrderedDict[str, Peer] = collections.OrderedDict()
        self.pinned = 0  # rows with an open connection
        self.evicted = 0

    def reconfigure(self, max_peers: int, lines_per_s: float, burst_lines: int, report: int,
                    max_hostnames: int = 8) -> None:
        self.max_peers, self.report, self.max_hostnames = max_peers, report, max_hostnames
        if (lines_per_s, burst_lines) != (self.lines_per_s, self.burst_lines):
            self.lines_per_s, self.burst_lines = lines_per_s, burst_lines
            for peer in self.table.values():
                peer.bucket.rate, peer.bucket.burst = lines_per_s, burst_lines
                peer.bucket.tokens = min(peer.bucket.tokens, burst_lines)
        self._evict()

    def get(self, host: str, now: float, connecting: bool = False, wall: float = 0.0) -> Peer:
        """The peer's row, made on first sight; seeing it makes it the most recent. `connecting`
        counts a connection it opens (`disconnected` undoes it). `wall`: Unix time of first sight."""
        peer = self.table.get(host)
        if peer is None:
            peer = self.table[host] = Peer(host, Bucket(self.lines_per_s, self.burst_lines, now), wall)
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

    def rejected(self, host: str, reason: str) -> None:
        """A line of `host` was rejected (by the framer, a listener or a parser). A sender that
        already left the table is not brought back for it."""
        peer = self.table.get(host)
        if peer is not None:
            peer.rejected[reason] = peer.rejected.get(reason, 0) + 1

    def claimed(self, host: str, names: list[str]) -> None:
        """Record host fields that `host`'s parsed lines carried (bounded by `max_hostnames`)."""
        peer = self.table.get(host)
        if peer is not None:
            peer.claim(names, self.max_hostnames)

    def senders(self, now: float) -> SendersAnswer:
        """SENDERS: every row, most recently seen first (`now`: the monotonic clock)."""
        rows = [peer.row(now) for peer in reversed(self.table.values())]
        return SendersAnswer(len(self.table), self.evicted, rows)

    def figures(self) -> PeersFigures:
        top = heapq.nlargest(self.report, self.table.values(), key=lambda p: p.lines) if self.report else []
        return PeersFigures(len(self.table), self.evicted, [p.figures() for p in top])


def host_of(peer: str) -> str:
    """The address of a peer name (`1.2.3.4:514`, `[::1]:514`): the key of its table row."""
    host, sep, port = peer.rpartition(":")
    if not sep or not port.isdigit():
        return peer
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host
