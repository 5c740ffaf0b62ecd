"""The fleet's anomaly detectors, sans-I/O: every node's detector feeds, as the view reads them
from the stream, consumed into one `Engine` (the daemon's own detectors, the same code) and
advanced to the cluster detector watermark that the view computes over the live nodes."""
from __future__ import annotations

from typing import Any

import msgspec

from logtallyd.detect.config import DetectConfig
from logtallyd.detect.engine import Engine
from logtallyd.detect.events import Event
from logtallyd.detect.feed import Feed

__all__ = ["FleetDetect"]


class FleetDetect:
    """`consume()` each node-second's feed in stream order, then `advance()` to the watermark."""

    def __init__(self, config: DetectConfig) -> None:
        self.engine = Engine(config)
        self.watermark: int | None = None  # the last one advanced to
        self.decode_errors = 0

    def consume(self, feed: bytes) -> None:
        """One node-second's merged feed (b"": a second without one). Seconds the fleet engine has
        passed already are counted late by it, whatever the node thought of them."""
        if not feed:
            return
        try:
            decoded = Feed.from_bytes(feed)
        except msgspec.DecodeError:
            self.decode_errors += 1
            return
        self.engine.consume(decoded)

    def advance(self, watermark: int | None) -> list[Event]:
        """Every second before `watermark` judged (None: no live node has data yet)."""
        if watermark is None:
            return []
        self.watermark = watermark if self.watermark is None else max(self.watermark, watermark)
        return self.engine.advance(watermark)

    def reconfigure(self, config: DetectConfig) -> None:
        """SIGHUP: the view node's new `[detect]`, applied as the local engine applies it."""
        self.engine.reconfigure(config)

    def figures(self) -> dict[str, Any]:
        """The engine's STATS `detect` object (records, late_lines, events_<type>...), with the
        watermark and the feeds that did not decode."""
        return {"watermark": self.watermark, "decode_errors": self.decode_errors, **self.engine.stats()}
