"""The merged fleet view, sans-I/O: every node's published seconds merged into one `Stats` (and
their detector feeds into the fleet detectors), the table of nodes (up while they publish), and
the cluster watermarks over the live ones."""
from __future__ import annotations

from typing import Any

import msgspec

from logtallyd.cluster.detect import FleetDetect
from logtallyd.cluster.wire import NodeSecond
from logtallyd.detect.events import Event
from logtallyd.stats.aggregate import Partial
from logtallyd.stats.config import StatsConfig
from logtallyd.stats.windows import Stats

__all__ = ["ClusterView", "NodeState"]


class NodeState(msgspec.Struct):
    name: str
    boot: str
    last_seq: int
    last_tick: float  # the node's clock at its last published second
    newest: int | None  # its newest event second
    lines: int  # lines it contributed (received: parsed + rejected)
    seconds: int  # messages merged from it
    restarts: int = 0  # boots seen after the first
    detect_watermark: int | None = None  # its own detector watermark, as of its last second
    # The last seq merged of each of its recent boots: a restarted node sends the seconds its
    # snapshot kept under their old boot, possibly after its newer boot's own.
    boots: dict[str, int] = {}


_KEPT_BOOTS = 16  # per node; a boot older than the last 16 restarts sends nothing any more


class ClusterView:
    """`apply()` each message in stream order; the queries answer like the local `Stats`."""

    def __init__(self, config: StatsConfig, down_after_s: float, started_at: float,
                 detect: FleetDetect | None = None) -> None:
        self.stats = Stats(config, started_at)
        self.down_after_s = down_after_s
        self.detect = detect  # None: the view runs no fleet detectors
        self.nodes: dict[str, NodeState] = {}
        self.duplicates = 0  # messages seen twice (a republished second), merged once
        self.stream_tick: float | None = None  # the newest `tick` any node published

    def apply(self, message: NodeSecond, now: float) -> list[Event]:
        """Merge one message (stream order); returns the fleet events it lets through."""
        state = self.nodes.get(message.node)
        if state is None:
            state = self.nodes[message.node] = NodeState(message.node, message.boot, -1, message.tick,
                                                          None, 0, 0)
        last = state.boots.get(message.boot)
        if last is not None and message.seq <= last:
            self.duplicates += 1
            return []
        if last is None and state.boots:
            state.restarts += 1
        state.boots.pop(message.boot, None)
        state.boots[message.boot] = message.seq  # the most recently heard boot last
        while len(state.boots) > _KEPT_BOOTS:
            del state.boots[next(iter(state.boots))]
        state.boot, state.last_seq = message.boot, message.seq
        state.last_tick = max(state.last_tick, message.tick)
        if message.newest is not None and (state.newest is None or message.newest > state.newest):
            state.newest = message.newest
        state.lines += message.received
        state.seconds += 1
        state.detect_watermark = message.detect_watermark
        if self.stream_tick is None or message.tick > self.stream_tick:
            self.stream_tick = message.tick
        if message.partial:
            self.stats.merge(Partial.from_bytes(message.partial), now)
        if self.detect is None:
            return []
        self.detect.consume(message.feed)
        return self.detect.advance(self.detect_watermark())

    def up(self, state: NodeState, now: float) -> bool:
        return now - state.last_tick <= self.down_after_s

    def watermark(self, now: float) -> int | None:
        """The oldest newest-second among the live nodes: every live node has published up to it.
        A node down (silent past `down_after_s`) no longer holds it back."""
        seconds = [s.newest for s in self.nodes.values() if s.newest is not None and self.up(s, now)]
        return min(seconds) if seconds else None

    def detect_watermark(self) -> int | None:
        """The oldest detector watermark among the nodes live by the stream's own clock (the
        newest tick published): every view, and a view replaying the stream after a restart,
        then reaches the same watermark at the same message and finds the same events. A node
        silent past `down_after_s` of that clock no longer holds it back."""
        if self.stream_tick is None:
            return None
        newest = self.stream_tick
        seconds = [s.detect_watermark for s in self.nodes.values()
                   if s.detect_watermark is not None and newest - s.last_tick <= self.down_after_s]
        return min(seconds) if seconds else None

    def contributors(self) -> list[str]:
        return sorted(name for name, s in self.nodes.items() if s.lines)

    def report(self, window: str, now: float) -> dict[str, Any]:
        """The local STATS shape of the merged view, plus the nodes that contributed."""
        report = self.stats.report(window, now)
        report["nodes"] = self.contributors()
        report["watermark"] = self.watermark(now)
        return report

    def table(self, now: float) -> dict[str, Any]:
        """CLUSTER: every node known, its last published second, lag and lines, up or down."""
        newest = max((s.newest for s in self.nodes.values() if s.newest is not None), default=None)
        rows = []
        for name in sorted(self.nodes):
            s = self.nodes[name]
            rows.append({
                "node": name,
                "up": self.up(s, now),
                "last_second": s.newest,
                # event seconds behind the newest node, and wall seconds since it last published
                "lag_s": None if newest is None or s.newest is None else newest - s.newest,
                "silent_s": round(max(0.0, now - s.last_tick), 3),
                "lines": s.lines,
                "seconds": s.seconds,
                "restarts": s.restarts,
                "detect_watermark": s.detect_watermark,  # its own detectors': it holds the fleet's here
            })
        return {"nodes": rows, "watermark": self.watermark(now), "down_after_s": self.down_after_s,
                "duplicates": self.duplicates,
                "detect_watermark": None if self.detect is None else self.detect.watermark}
