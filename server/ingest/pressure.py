"""How much the middle of the flow may hold: the in-flight bound and the pause/resume rule.

Sans-I/O cores: `InFlight` says which batches may go to the pool now, `Pressure` says when the
ingest transports must stop reading and when they may read again. The shells apply the answers.
"""
from __future__ import annotations

import collections
import enum
from typing import Generic, Iterable, TypeVar

__all__ = ["InFlight", "PAUSE", "Pressure", "RESUME", "Transition"]

T = TypeVar("T")


class InFlight(Generic[T]):
    """At most `limit` batches handed to the pool and not yet merged; the others wait, ready.

    A batch counts until it is merged, not until its worker returns: results held for an earlier
    batch still take memory, so they still take a place.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self.limit = limit
        self.in_flight = 0
        self.ready: collections.deque[T] = collections.deque()

    def queue(self, batches: Iterable[T]) -> None:
        """Batches cut and waiting for a place, oldest first."""
        self.ready.extend(batches)

    def start(self) -> list[T]:
        """The ready batches that may be handed to the pool now, oldest first."""
        started: list[T] = []
        while self.ready and self.in_flight < self.limit:
            started.append(self.ready.popleft())
            self.in_flight += 1
        return started

    def finish(self) -> None:
        """One batch was merged: its place is free (call `start` again)."""
        if self.in_flight <= 0:
            raise ValueError("no batch is in flight")
        self.in_flight -= 1

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and not self.ready


class Transition(enum.Enum):
    """What the shell must do to its transports."""

    PAUSE = "pause"
    RESUME = "resume"


PAUSE = Transition.PAUSE
RESUME = Transition.RESUME


class Pressure:
    """Pause at `high_bytes` buffered or `max_ready` batches waiting for the pool; resume once
    below `low_bytes` with none waiting. The gap between the marks keeps a busy pool from
    pausing and resuming the senders on every batch."""

    def __init__(self, high_bytes: int, max_ready: int, low_bytes: int | None = None) -> None:
        self.reconfigure(high_bytes, max_ready, low_bytes)
        self.paused = False
        self.pauses = 0  # times paused since start

    def reconfigure(self, high_bytes: int, max_ready: int, low_bytes: int | None = None) -> None:
        """New marks; they apply from the next `update`, whether paused or not."""
        self.high_bytes = high_bytes
        self.low_bytes = high_bytes // 2 if low_bytes is None else low_bytes
        self.max_ready = max_ready

    def update(self, buffered_bytes: int, ready: int) -> Transition | None:
        """The transition the figures call for, if any; asking again without change gives None."""
        if not self.paused:
            if buffered_bytes >= self.high_bytes or ready >= self.max_ready:
                self.paused = True
                self.pauses += 1
                return PAUSE
        elif buffered_bytes < self.low_bytes and ready == 0:
            self.paused = False
            return RESUME
        return None
