"""The node's side of the bus, sans-I/O: partials and detector feeds merged since the last second
are sealed into one `NodeSecond`, kept in a bounded queue until the publisher confirms them, and
counted once dropped."""
from __future__ import annotations

import collections

import msgspec

from logtallyd.cluster.wire import NodeSecond, encode
from logtallyd.detect.feed import Feed, merge_feed
from logtallyd.stats.aggregate import Partial

__all__ = ["Outbox", "OutboxFigures"]


class OutboxFigures(msgspec.Struct, frozen=True):
    published: int  # seconds the stream confirmed
    buffered: int  # sealed seconds waiting for the stream
    unpublished_seconds: int  # sealed seconds dropped past `buffer_seconds`
    unpublished_lines: int  # the lines those seconds counted
    bus_bytes: int  # payload bytes confirmed


class Outbox:
    """`add()` is all the ingest path does (append bytes); `seal()` runs once a second."""

    def __init__(self, node: str, boot: str, buffer_seconds: int) -> None:
        self.node = node
        self.boot = boot
        self.buffer_seconds = buffer_seconds
        self._open: list[bytes] = []  # encoded partials of the second being filled
        self._open_received = 0
        self._open_feeds: list[bytes] = []  # encoded feeds of the second being filled
        self.queue: collections.deque[tuple[NodeSecond, bytes]] = collections.deque()
        self.seq = 0
        self.published = 0
        self.unpublished_seconds = 0
        self.unpublished_lines = 0
        self.bus_bytes = 0

    def add(self, partial: Partial) -> None:
        """A partial about to be merged locally (`Stats.tee`); encoded now, as the merge changes it."""
        self._open.append(partial.to_bytes())
        self._open_received += partial.received

    def add_feed(self, feed: bytes) -> None:
        """A batch's detector feed (`Feed.to_bytes()`) as the local engine consumes it: bytes,
        because the engine takes the decoded one over and changes it."""
        self._open_feeds.append(feed)

    def seal(self, tick: float, newest: int | None, detect_watermark: int | None = None) -> NodeSecond:
        """Close the open second into one message (a heartbeat when nothing came) and queue it;
        past `buffer_seconds` queued, the oldest is dropped and counted."""
        parts, self._open = self._open, []
        if len(parts) > 1:
            merged = Partial.from_bytes(parts[0])
            for data in parts[1:]:
                merged.merge(Partial.from_bytes(data))
            payload = merged.to_bytes()
        else:
            payload = parts[0] if parts else b""
        message = NodeSecond(self.node, self.boot, self.seq, tick, newest, self._open_received, payload,
                             self._seal_feeds(), detect_watermark)
        self.seq += 1
        self._open_received = 0
        self._open_feeds: list[bytes] = []  # encoded feeds of the second being filled
        self.queue.append((message, encode(message)))
        while len(self.queue) > self.buffer_seconds:
            dropped, _ = self.queue.popleft()
            self.unpublished_seconds += 1
            self.unpublished_lines += dropped.received
        return message

    def _seal_feeds(self) -> bytes:
        feeds, self._open_feeds = self._open_feeds, []
        if len(feeds) == 1:
            return feeds[0]
        if not feeds:
            return b""
        merged = Feed.from_bytes(feeds[0])
        for data in feeds[1:]:
            merge_feed(merged.data, Feed.from_bytes(data).data)
        return merged.to_bytes()

    def head(self) -> tuple[NodeSecond, bytes] | None:
        """The oldest sealed second not yet confirmed: seconds go out in order."""
        return self.queue[0] if self.queue else None

    def confirmed(self, message: NodeSecond) -> None:
        """The stream stored `message` (a `head()`, unless a seal dropped it meanwhile)."""
        if self.queue and self.queue[0][0] is message:
            self.queue.popleft()
        else:  # dropped while its publish was in flight, yet stored: it was not lost after all
            self.unpublished_seconds -= 1
            self.unpublished_lines -= message.received
        self.published += 1
        self.bus_bytes += len(encode(message))

    def figures(self) -> OutboxFigures:
        return OutboxFigures(self.published, len(self.queue), self.unpublished_seconds,
                             self.unpublished_lines, self.bus_bytes)
