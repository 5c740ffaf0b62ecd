"""Publish/subscribe for control connections: bounded per-subscriber queues that never block ingest.

A subscriber's queue holds at most `queue_size` encoded messages; when it is full the oldest are
dropped and, once the client reads again, it first receives `{"type":"lagged","dropped":N}`.
A subscriber whose socket stays unwritable for `stalled_s` is disconnected.
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any, Callable

import msgspec

from logtallyd.publish.config import ControlConfig

_json = msgspec.json.Encoder()

TOPICS = ("stats", "anomalies", "tail", "jobs")
# `SUBSCRIBE stats cluster`: the fleet view's stream of the same topic, under its own name.
CLUSTER_TOPICS = {"stats": "stats.cluster", "anomalies": "anomalies.cluster"}


class Subscriber:
    def __init__(self, transport: asyncio.WriteTransport, queue_size: int, clock: Callable[[], float]) -> None:
        self.transport = transport
        self.queue: collections.deque[bytes] = collections.deque()
        self.queue_size = queue_size
        self.clock = clock
        self.topics: set[str] = set()
        self.interval_s = 1.0
        self.next_stats_at: dict[str, float] = {}  # stats topic -> when it is next due
        self.tail_filter: Callable[[dict[str, Any]], bool] | None = None
        self.tail_terms: tuple[str, ...] = ()  # the filter as words, sent to the workers
        self.dropped = 0  # since the last `lagged` notice
        self.dropped_total = 0
        self.sent = 0
        self.writable = True
        self.blocked_since: float | None = None

    def offer(self, line: bytes) -> None:
        self.offer_many([line])

    def offer_many(self, lines: list[bytes]) -> None:
        """Write the messages now if the socket takes them, else queue them (the oldest go first
        when the queue is full)."""
        if self.writable and not self.queue and not self.dropped and not self.transport.is_closing():
            self.transport.write(b"".join(lines))
            self.sent += len(lines)
            return
        overflow = len(self.queue) + len(lines) - self.queue_size
        if overflow > 0:
            self.dropped += overflow
            self.dropped_total += overflow
            if overflow >= len(self.queue):
                lines = lines[overflow - len(self.queue) :]
                self.queue.clear()
            else:
                for _ in range(overflow):
                    self.queue.popleft()
        self.queue.extend(lines)
        self.flush()

    def flush(self) -> None:
        """One write for everything queued: with a hundred subscribers and a busy tail, a write
        per message would cost the event loop more than ingestion does."""
        if not self.writable or not (self.queue or self.dropped):
            return
        if self.transport.is_closing():
            self.queue.clear()
            return
        parts: list[bytes] = []
        if self.dropped:
            parts.append(_json.encode({"type": "lagged", "dropped": self.dropped}) + b"\n")
            self.dropped = 0
        parts.extend(self.queue)
        self.sent += len(self.queue)
        self.queue.clear()
        self.transport.write(b"".join(parts))

    def pause_writing(self) -> None:
        self.writable = False
        self.blocked_since = self.clock()

    def resume_writing(self) -> None:
        self.writable = True
        self.blocked_since = None
        self.flush()


class HubFigures(msgspec.Struct):
    """STATS `subscribers` (less `tail_skipped`, which the workers count)."""

    open: int
    dropped_messages: int
    disconnected_stalled: int


class Hub:
    def __init__(self, queue_size: int, stalled_s: float, clock: Callable[[], float],
                 on_leave: Callable[[Subscriber], None] | None = None) -> None:
        self.queue_size = queue_size
        self.stalled_s = stalled_s
        self.clock = clock
        self.subscribers: set[Subscriber] = set()
        self.disconnected_stalled = 0
        self.dropped_total = 0  # of subscribers that have left
        self.on_leave = on_leave

    def figures(self) -> HubFigures:
        return HubFigures(len(self.subscribers), self.dropped, self.disconnected_stalled)

    def reconfigure(self, control: ControlConfig) -> None:
        self.queue_size = control.subscriber_queue
        self.stalled_s = control.stalled_subscriber_s

    def add(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)

    def remove(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            self.dropped_total += sub.dropped_total
            if self.on_leave is not None:
                self.on_leave(sub)

    def wants(self, topic: str) -> bool:
        return any(topic in sub.topics for sub in self.subscribers)

    def publish(self, topic: str, message: Any) -> None:
        line: bytes | None = None
        for sub in self.subscribers:
            if topic in sub.topics:
                if line is None:
                    line = _json.encode(message) + b"\n"
                sub.offer(line)

    def tail_terms(self) -> tuple[tuple[str, ...], ...]:
        return tuple(sorted({s.tail_terms for s in self.subscribers if "tail" in s.topics}))

    def publish_tail(self, records: list[dict[str, Any]]) -> None:
        """A batch's tail records: each filter runs once per record for all subscribers sharing
        it, each record is encoded once, and each subscriber gets one write per batch."""
        groups: dict[tuple[str, ...], list[Subscriber]] = {}
        for sub in self.subscribers:
            if "tail" in sub.topics:
                groups.setdefault(sub.tail_terms, []).append(sub)
        if not groups:
            return
        encoded: list[bytes | None] = [None] * len(records)
        for subs in groups.values():
            keep = subs[0].tail_filter
            lines = []
            for i, record in enumerate(records):
                if keep is None or keep(record):
                    line = encoded[i]
                    if line is None:
                        line = encoded[i] = _json.encode({"type": "record", **record}) + b"\n"
                    lines.append(line)
            if lines:
                for sub in subs:
                    sub.offer_many(lines)

    def due_for_stats(self, now: float, topic: str = "stats") -> list[Subscriber]:
        due = [s for s in self.subscribers if topic in s.topics and s.next_stats_at.get(topic, 0.0) <= now]
        for sub in due:
            sub.next_stats_at[topic] = now + sub.interval_s
        return due

    def sweep_stalled(self, now: float) -> int:
        closed = 0
        for sub in list(self.subscribers):
            if sub.blocked_since is not None and now - sub.blocked_since > self.stalled_s:
                sub.transport.abort()  # type: ignore[attr-defined]
                self.remove(sub)
                self.disconnected_stalled += 1
                closed += 1
        return closed

    @property
    def dropped(self) -> int:
        return self.dropped_total + sum(s.dropped_total for s in self.subscribers)
