"""The node's side of the bus, sans-I/O: partials and detector feeds merged since the last second
are sealed into one `NodeSecond` (several past `max_message_bytes`), kept in a bounded queue until
the publisher confirms them, and counted once dropped."""
from __future__ import annotations

import collections

import msgspec

from logtallyd.cluster.wire import NodeSecond, decode, encode
from logtallyd.detect.feed import Feed, merge_feed
from logtallyd.stats.aggregate import Partial

__all__ = ["Outbox", "OutboxFigures"]


class OutboxFigures(msgspec.Struct, frozen=True):
    published: int  # seconds the stream confirmed
    buffered: int  # sealed seconds waiting for the stream
    unpublished_seconds: int  # sealed seconds dropped past `buffer_seconds`
    unpublished_lines: int  # the lines those seconds counted
    oversize: int  # of those, messages the NATS server refused as larger than its max_payload
    bus_bytes: int  # payload bytes confirmed
    # Lines counted again from the archive at start (after a kill -9) and not published: the
    # previous process published them already, all but those of its last second or so.
    replayed_lines: int = 0
    held: int = 0  # sealed seconds waiting for a snapshot to count them (`publish = "durable"`)
    restored: int = 0  # sealed seconds a snapshot kept unpublished, queued again at start


class Outbox:
    """`add()` is all the ingest path does (append bytes); `seal()` runs once a second."""

    def __init__(self, node: str, boot: str, buffer_seconds: int, max_message_bytes: int = 1_000_000,
                 durable: bool = False, restored: list[bytes] | None = None) -> None:
        self.node = node
        self.boot = boot
        self.buffer_seconds = buffer_seconds
        self.max_message_bytes = max_message_bytes
        # `[cluster] publish = "durable"`: a sealed second waits in `held` until a snapshot that
        # counts its lines is on disk, so the fleet never has a line a restart counts again.
        self.durable = durable
        self.held: collections.deque[tuple[NodeSecond, bytes]] = collections.deque()
        self._open: list[tuple[bytes, int]] = []  # encoded partials of the second being filled, and their lines
        self._open_feeds: list[bytes] = []  # encoded feeds of the second being filled
        self._detect_watermark: int | None = None  # as of the last seal
        self.queue: collections.deque[tuple[NodeSecond, bytes]] = collections.deque()
        self.seq = 0
        self.published = 0
        self.unpublished_seconds = 0
        self.unpublished_lines = 0
        self.bus_bytes = 0
        self.oversize = 0
        # While the archive is replayed at start the fleet already holds those lines (published by
        # the process that archived them): they are counted locally, not sent a second time.
        self.replaying = False
        self.replayed_lines = 0
        # Seconds a snapshot held unpublished (a previous process's, under their own boot and seq:
        # the stream's duplicate window and the view's per-boot seq store each once).
        for data in restored or ():
            try:
                self.queue.append((decode(data), data))
            except msgspec.DecodeError:  # a snapshot of another version: its lines stay local
                self.unpublished_seconds += 1
        self.restored = len(self.queue)

    def add(self, partial: Partial) -> None:
        """A partial about to be merged locally (`Stats.tee`); encoded now, as the merge changes it."""
        if self.replaying:
            self.replayed_lines += partial.received
            return
        self._open.append((partial.to_bytes(), partial.received))

    def add_feed(self, feed: bytes) -> None:
        """A batch's detector feed (`Feed.to_bytes()`) as the local engine consumes it: bytes,
        because the engine takes the decoded one over and changes it."""
        if not self.replaying:
            self._open_feeds.append(feed)

    def seal(self, tick: float, newest: int | None, detect_watermark: int | None = None) -> NodeSecond:
        """Close the open second into one message (a heartbeat when nothing came) and queue it;
        past `buffer_seconds` queued, the oldest is dropped and counted. A second that merges to
        more than `max_message_bytes` goes as several messages (NATS refuses one over its
        `max_payload`); only the last carries the new detector watermark, so the view judges no
        second before all of them are in. Returns the last."""
        parts, self._open = self._open, []
        feeds, self._open_feeds = self._open_feeds, []
        sealed = _sealed(parts, feeds, self.max_message_bytes)
        for i, (partial, received, feed) in enumerate(sealed):
            last = i == len(sealed) - 1
            message = NodeSecond(self.node, self.boot, self.seq, tick, newest, received, partial, feed,
                                 detect_watermark if last else self._detect_watermark)
            self.seq += 1
            (self.held if self.durable else self.queue).append((message, encode(message)))
        self._detect_watermark = detect_watermark
        while len(self.queue) + len(self.held) > self.buffer_seconds:
            dropped, _ = (self.queue or self.held).popleft()
            self.unpublished_seconds += 1
            self.unpublished_lines += dropped.received
        return message

    def checkpoint(self) -> tuple[list[bytes], int]:
        """What a snapshot taken now keeps (every sealed second not yet confirmed: a restart
        publishes them), and the mark to pass to `durable_up_to` once that snapshot is written
        (the seq of the newest held second). Call right after a `seal()`, in the same step as the
        totals are taken."""
        blobs = [data for _, data in self.queue] + [data for _, data in self.held]
        return blobs, self.held[-1][0].seq if self.held else -1

    def durable_up_to(self, mark: int) -> None:
        """The snapshot of `checkpoint()` is on disk: the held seconds up to seq `mark` may go
        out; those sealed while it was written wait for the next one. (Held seconds are all of
        this boot: a restored one is durable already.)"""
        while self.held and self.held[0][0].seq <= mark:
            self.queue.append(self.held.popleft())

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

    def too_large(self, message: NodeSecond) -> None:
        """The server refused `message` (a `head()`) as over its `max_payload`: retrying would
        hold every later second back, so it is dropped and counted."""
        if self.queue and self.queue[0][0] is message:
            self.queue.popleft()
            self.unpublished_seconds += 1
            self.unpublished_lines += message.received
            self.oversize += 1

    def figures(self) -> OutboxFigures:
        return OutboxFigures(self.published, len(self.queue), self.unpublished_seconds,
                             self.unpublished_lines, self.oversize, self.bus_bytes, self.replayed_lines,
                             len(self.held), self.restored)


Sealed = tuple[bytes, int, bytes]  # (merged partial, its lines, merged feed) of one message


def _sealed(parts: list[tuple[bytes, int]], feeds: list[bytes], budget: int) -> list[Sealed]:
    """The second merged into one message, or, when that passes `budget`, each half sealed
    alike (a merge can outgrow its parts: sketches re-encode), in order; a single part that
    passes it alone goes as it is."""
    partial, feed = _merge_partials([p for p, _ in parts]), _merge_feeds(feeds)
    if len(partial) + len(feed) <= budget or len(parts) + len(feeds) <= 1:
        return [(partial, sum(n for _, n in parts), feed)]
    half = (len(parts) + len(feeds)) // 2
    cut = max(0, half - len(parts))
    return _sealed(parts[:half], feeds[:cut], budget) + _sealed(parts[half:], feeds[cut:], budget)


def _merge_partials(parts: list[bytes]) -> bytes:
    if len(parts) <= 1:
        return parts[0] if parts else b""
    merged = Partial.from_bytes(parts[0])
    for data in parts[1:]:
        merged.merge(Partial.from_bytes(data))
    return merged.to_bytes()


def _merge_feeds(feeds: list[bytes]) -> bytes:
    if len(feeds) <= 1:
        return feeds[0] if feeds else b""
    merged = Feed.from_bytes(feeds[0])
    for data in feeds[1:]:
        merge_feed(merged.data, Feed.from_bytes(data).data)
    return merged.to_bytes()
