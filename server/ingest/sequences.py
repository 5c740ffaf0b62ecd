"""Stream-sequence bookkeeping for a JetStream source, sans I/O: which messages are new, which are
counted (merged into the windows), which are durable (in a written snapshot) and may be acknowledged.

Each message is acknowledged on its own once durable, and a delivery is skipped only if its own
sequence was counted, never because a higher one was: a message lost in the client and redelivered
late, out of order, is still counted once.
"""
from __future__ import annotations

import bisect
import collections

import msgspec

__all__ = ["NatsPosition", "SequenceBook", "split_lines"]


class NatsPosition(msgspec.Struct, frozen=True, array_like=True):
    """Recorded in the snapshot: the totals hold every message of `stream` up to sequence `seq`
    (the consumer's, gaps of other subjects aside) and the messages `above` it, ascending."""

    stream: str
    seq: int
    above: tuple[int, ...] = ()

    def covers(self, seq: int) -> bool:
        if seq <= self.seq:
            return True
        i = bisect.bisect_left(self.above, seq)
        return i < len(self.above) and self.above[i] == seq


class SequenceBook:
    """Stream sequences through submitted -> applied -> durable -> acknowledged."""

    def __init__(self, stream: str, restored: NatsPosition | None = None) -> None:
        self.stream = stream
        own = restored is not None and restored.stream == stream
        self.floor = restored.seq if restored is not None and own else 0  # every seq <= it is counted
        # Counted (merged) sequences above `floor`; a gap below one of them is a message not yet
        # counted (another subject's, or one still to be redelivered).
        self._applied: set[int] = set(restored.above) if restored is not None and own else set()
        self._in_pipeline: set[int] = set()
        self.applied = max(self._applied, default=self.floor)  # the highest counted sequence
        self.durable = NatsPosition(stream, self.floor, tuple(sorted(self._applied)))
        self.acked = 0  # the highest sequence acknowledged to the server
        self.duplicates = 0  # deliveries skipped because their message was already counted
        # (pipeline batch number that holds the message's lines, stream sequence), in order.
        self._pending: collections.deque[tuple[int, int]] = collections.deque()

    def accept(self, seq: int) -> bool:
        """Count this delivery? False for a message already counted or in the pipeline."""
        if seq <= self.floor or seq in self._applied or seq in self._in_pipeline:
            self.duplicates += 1
            return False
        return True

    def submitted(self, seq: int, batch: int) -> None:
        """The message's lines went into pipeline batch number `batch` (or an earlier one)."""
        self._in_pipeline.add(seq)
        self._pending.append((batch, seq))

    def merged(self, batch: int) -> int:
        """Every pipeline batch up to `batch` is merged: returns the highest counted sequence."""
        while self._pending and self._pending[0][0] <= batch:
            seq = self._pending.popleft()[1]
            self._in_pipeline.discard(seq)
            self._applied.add(seq)
            self.applied = max(self.applied, seq)
        self._compact()
        return self.applied

    def position(self, batch: int) -> NatsPosition:
        """What a snapshot taken now covers, when the pipeline has merged through `batch`."""
        self.merged(batch)
        return NatsPosition(self.stream, self.floor, tuple(sorted(self._applied)))

    def made_durable(self, position: NatsPosition) -> NatsPosition:
        """A snapshot holding `position` is on disk: a delivery it `covers` may be acknowledged
        (a redelivery of one acknowledged before as well). Returns what is durable now."""
        old = self.durable
        if position.stream == self.stream and position.seq >= old.seq and all(
                position.covers(seq) for seq in old.above):
            self.durable = position  # an older snapshot's write finishing late never moves it back
        return self.durable

    def acknowledged(self, seq: int) -> None:
        self.acked = max(self.acked, seq)

    def ack_floor(self, seq: int) -> None:
        """The server holds an acknowledgement for each of the consumer's messages up to `seq`, so
        each was durable when acknowledged: the per-sequence record below it can go."""
        if seq > self.floor:
            self.floor = seq
            self._compact()

    def _compact(self) -> None:
        applied = self._applied
        applied.difference_update([s for s in applied if s <= self.floor])
        while self.floor + 1 in applied:  # contiguous with the floor: no message can be missing
            self.floor += 1
            applied.discard(self.floor)
        self.applied = max(self.applied, self.floor)

    @property
    def in_pipeline(self) -> int:
        return len(self._pending)

    @property
    def counted_above_floor(self) -> int:
        return len(self._applied)


def split_lines(data: bytes) -> list[bytes]:
    """One message = one or more lines separated by LF (a CR before it dropped); empty ones ignored."""
    if b"\n" not in data:
        return [data.removesuffix(b"\r")] if data.strip(b"\r") else []
    return [line.removesuffix(b"\r") for line in data.split(b"\n") if line.strip(b"\r")]
