"""Rolling statistical anomaly detector: per service, one sample per interval of lines/s, error
rate and p95 latency; an exponentially weighted mean and variance (constant time per sample)
give z = (value - mean) / std, and |z| > k fires once until the metric comes back within k.
"""
from __future__ import annotations

import math

import msgspec

from logtallyd.detect.config import DetectConfig, ZScoreConfig
from logtallyd.detect.detector import SectionDetector
from logtallyd.detect.events import Event, ZScore
from logtallyd.detect.feed import Second
from logtallyd.detect.histogram import merge_into, quantile

METRICS = ("lines_per_s", "error_rate", "p95_latency_ms")


class Metric(msgspec.Struct, array_like=True):
    mean: float = 0.0
    var: float = 0.0
    n: int = 0
    armed: bool = True  # False after an event, until |z| <= k again


class ServiceState(msgspec.Struct):
    interval: int  # index of the interval being accumulated (second // interval_s)
    last_seen: int
    lines: int = 0
    errors: int = 0
    latency: dict[int, int] = {}
    # The first interval of a service is usually cut short by when it started: not a sample.
    seen_full: bool = False
    metrics: dict[str, Metric] = {}


class ZScoreState(msgspec.Struct):
    services: dict[str, ServiceState] = {}  # least recently seen first
    untracked: int = 0
    last_second: int | None = None
    last_data: int | None = None  # the newest second processed that had any line


class ZScoreDetector(SectionDetector[ZScoreConfig, ZScoreState]):
    def section(self, config: DetectConfig) -> ZScoreConfig:
        return config.zscore

    def figures(self) -> dict[str, int]:
        return {"untracked_zscore_lines": self.state.untracked}

    def reconfigure(self, config: DetectConfig) -> None:
        """Keep baselines; a new interval length restarts only the interval in progress."""
        if config.zscore.interval_s != self.config.interval_s:
            for state in self.state.services.values():
                state.lines, state.errors, state.latency = 0, 0, {}
                state.seen_full = False
                state.interval = -1
        super().reconfigure(config)

    def step(self, second: int, data: Second | None) -> list[Event]:
        config = self.config
        index = second // config.interval_s
        services = self.state.services
        events: list[Event] = []
        # Close every interval that ended before this second (normally all at a boundary;
        # after a jump over a long gap, whatever was left open).
        last, self.state.last_second = self.state.last_second, second
        if last is None or last != second - 1 or second % config.interval_s == 0:
            last_data = self.state.last_data
            for name in sorted(services):
                state = services[name]
                if state.interval < index and state.lines:
                    # An interval the input stopped inside (no line at all, of any service, in
                    # its last second nor at the boundary after it) was cut short by the end of
                    # the input, or a pause in it, as a service's first interval is by when it
                    # started: not a sample either. Otherwise a replay that ends mid-interval
                    # would report a drop in lines/s once the server's clock runs on.
                    end = (state.interval + 1) * config.interval_s
                    cut = (last_data is None or last_data < end - 1) and not (
                        second == end and data is not None and data.services
                    )
                    self._close(name, state, events, cut)
        if data is not None:
            if data.services:
                self.state.last_data = second
            for name in sorted(data.services):
                tally = data.services[name]
                state = services.pop(name, None)
                if state is None:
                    if len(services) >= config.max_services:
                        self.state.untracked += tally.lines
                        continue
                    state = ServiceState(index, second)
                if state.interval != index:
                    state.interval = index
                state.lines += tally.lines
                state.errors += tally.errors
                merge_into(state.latency, tally.latency)
                state.last_seen = second
                services[name] = state  # re-inserted last: dict order is recency order
        horizon = second - config.expire_s
        while services:
            name = next(iter(services))
            if services[name].last_seen >= horizon:
                break
            del services[name]
        return events

    def _close(self, name: str, state: ServiceState, events: list[Event], cut: bool = False) -> None:
        config = self.config
        lines, errors, latency = state.lines, state.errors, state.latency
        ts = float(state.interval * config.interval_s)
        state.lines, state.errors, state.latency = 0, 0, {}
        if not state.seen_full:
            state.seen_full = True
            return
        if cut:
            return
        values: dict[str, float] = {
            "lines_per_s": lines / config.interval_s,
            "error_rate": errors / lines,
        }
        if sum(latency.values()) >= config.min_latency_count:
            p95 = quantile(latency, 0.95)
            if p95 is not None:
                values["p95_latency_ms"] = p95
        floors = {
            "lines_per_s": config.lines_floor,
            "error_rate": config.error_rate_floor,
            "p95_latency_ms": config.latency_floor_ms,
        }
        alpha = 2.0 / (config.window + 1)
        for metric in METRICS:
            if metric not in values:
                continue
            value = values[metric]
            m = state.metrics.get(metric)
            if m is None:
                m = state.metrics[metric] = Metric()
            if m.n >= config.min_samples:
                std = max(math.sqrt(m.var), floors[metric], config.rel_floor * abs(m.mean))
                z = (value - m.mean) / std
                if abs(z) > config.k:
                    if m.armed:
                        m.armed = False
                        events.append(
                            ZScore(
                                ts, "zscore", name, metric, value, m.mean, std, z, m.n,
                                config.interval_s,
                            )
                        )
                else:
                    m.armed = True
            _update(m, value, alpha)


def _update(m: Metric, value: float, alpha: float) -> None:
    """Exponentially weighted mean and variance (Finch 2009, "Incremental calculation...", §9)."""
    if m.n == 0:
        m.mean, m.var = value, 0.0
    else:
        diff = value - m.mean
        incr = alpha * diff
        m.mean += incr
        m.var = (1 - alpha) * (m.var + diff * incr)
    m.n += 1
