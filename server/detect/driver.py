"""Drives the detection engine from batch results, in stream order and on an event-time clock."""
# Feeds arrive in batch order (the shell releases results through `logtallyd.ingest.reorder`),
# so a stream is seen in the order it was sent, as `analyze` sees a file. The watermark is the
# newest event second seen less `lateness_s`; when the input goes quiet, the event clock runs on
# at wall-clock pace from that second, so an error burst at the end of a replay still resolves.
# Seconds more than `max_future_s` ahead of the clock (a sender with a bad clock) are counted as
# `future_lines` and dropped: one such line must not move the event clock years ahead and make
# every line after it late. Sans-I/O: the wall clock (for the idle pace) is passed in; `clock`
# (Unix time, for the future guard) is injected.
from __future__ import annotations

import time
from typing import Callable

from logtallyd.detect.config import DetectConfig
from logtallyd.detect.engine import Engine
from logtallyd.detect.events import Event
from logtallyd.detect.feed import Feed


class Driver:
    def __init__(
        self,
        engine: Engine,
        lateness_s: int,
        max_future_s: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.lateness_s = lateness_s
        self.max_future_s = max_future_s  # as `[stats] max_future_s`: the same lines are `future` there
        self.clock = clock
        self.newest: int | None = None  # newest event second consumed
        self.newest_at: float = 0.0  # wall time when `newest` last moved

    def reconfigure(self, detect: DetectConfig, lateness_s: int) -> None:
        """SIGHUP: new detector thresholds and lateness; detector state is kept."""
        self.engine.reconfigure(detect)
        self.lateness_s = lateness_s

    def add(self, feed: Feed | None, wall: float) -> list[Event]:
        """The next batch's feed, in stream order (None for a batch that failed: only the clock
        moves); returns the events it lets through."""
        if feed is not None:
            self.drop_future(feed)
            seconds = feed.data.seconds
            if seconds:
                top = max(seconds)
                if self.newest is None or top > self.newest:
                    self.newest = top
                    self.newest_at = wall
            self.engine.consume(feed)
        return self.tick(wall)

    def drop_future(self, feed: Feed) -> int:
        """Count and remove the seconds too far ahead of the clock; returns how many it removed.
        `add` does it too, so calling it first (to copy the feed as the engine will see it) is safe."""
        seconds = feed.data.seconds
        if not seconds:
            return 0
        limit = int(self.clock()) + self.max_future_s
        future = [s for s in seconds if s > limit]
        for second in future:
            self.engine.counters["future_lines"] += seconds.pop(second).lines()
        return len(future)

    def watermark(self, wall: float) -> int | None:
        """The second the engine is advanced to at `wall`: data before it is late (None: no data yet)."""
        if self.newest is None:
            return None
        idle = max(0.0, wall - self.newest_at)
        return self.newest + int(idle) - self.lateness_s

    def tick(self, wall: float) -> list[Event]:
        """Advance to the event clock's watermark (call periodically)."""
        watermark = self.watermark(wall)
        return [] if watermark is None else self.engine.advance(watermark)

    def finish(self) -> list[Event]:
        """End of input (batch analysis): process everything and let open episodes resolve."""
        return self.engine.flush(drain=True)
