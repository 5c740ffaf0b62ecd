"""Stream-sequence bookkeeping for a JetStream source, sans I/O: which messages are new, which are
counted (merged into the windows), which are durable (in a written snapshot) and may be acknowledged.

A message is acknowledged only once durable, and one already counted is never counted again (a
redelivery after a crash or past `ack_wait`), so each stream message is counted exactly once.
"""
from __future__ import annotations

import collections

import msgspec

__all__ = ["NatsPosition", "SequenceBook", "split_lines"]


class NatsPosition(msgspec.Struct, frozen=True, array_like=True):
    """Recorded in the snapshot: the totals hold every message of `stream` up to sequence `seq`."""

    stream: str
    seq: int


class SequenceBook:
    """Stream sequences through submitted -> applied -> durable -> acknowledged."""

    def __init__(self, stream: str, restored: NatsPosition | None = None) -> None:
        self.stream = stream
        start = restored.seq if restored is not None and restored.stream == stream else 0
        self.seen = start  # the highest sequence handed to the pipeline (or restored as counted)
        self.applied = start  # every message up to here is merged into the totals
        self.durable = start  # ...and in a snapshot on disk
        self.acked = 0  # the highest sequence acknowledged to the server
        self.duplicates = 0  # deliveries skipped because their message was already counted
        # (pipeline batch number that holds the message's lines, stream sequence), in order.
        self._pending: collections.deque[tuple[int, int]] = collections.deque()

    def accept(self, seq: int) -> bool:
        """Count this delivery? False for a message already counted or in the pipeline."""
        if seq <= self.seen:
            self.duplicates += 1
            return False
        return True

    def submitted(self, seq: int, batch: int) -> None:
        """The message's lines went into pipeline batch number `batch` (or an earlier one)."""
        self.seen = seq
        self._pending.append((batch, seq))

    def merged(self, batch: int) -> int:
        """Every pipeline batch up to `batch` is merged: returns the applied sequence."""
        while self._pending and self._pending[0][0] <= batch:
            self.applied = self._pending.popleft()[1]
        return self.applied

    def position(self, batch: int) -> NatsPosition:
        """What a snapshot taken now covers, when the pipeline has merged through `batch`."""
        return NatsPosition(self.stream, self.merged(batch))

    def made_durable(self, position: NatsPosition) -> int:
        """A snapshot holding `position` is on disk: every delivery up to the returned sequence
        may be acknowledged (a redelivery of one acknowledged before as well)."""
        if position.stream == self.stream:
            self.durable = max(self.durable, position.seq)
        self.acked = max(self.acked, self.durable)
        return self.durable

    @property
    def in_pipeline(self) -> int:
        return len(self._pending)


def split_lines(data: bytes) -> list[bytes]:
    """One message = one or more lines separated by LF (a CR before it dropped); empty ones ignored."""
    if b"\n" not in data:
        return [data.removesuffix(b"\r")] if data.strip(b"\r") else []
    return [line.removesuffix(b"\r") for line in data.split(b"\n") if line.strip(b"\r")]
