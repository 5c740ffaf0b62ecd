"""Rolling z-score detector: latency and rate jumps fire once, steady streams never, and the
figures in the event are those of an independent EWMA recomputation."""
from __future__ import annotations

import math
import random
import re

import pytest

from logtallyd.detect.config import DetectConfig, ZScoreConfig
from logtallyd.detect.events import ZScore
from logtallyd.detect.histogram import histogram_of, quantile
from logtallyd.detect.replay import replay
from logtallyd.records import Http, Record

T0 = 1_700_000_000  # a multiple of every interval used here


def template(message: str) -> str:
    return re.sub(r"\d+", "<n>", message)


def config(**zscore: object) -> DetectConfig:
    return DetectConfig(zscore=ZScoreConfig(**zscore), patterns=[])  # type: ignore[arg-type]


def stream(
    seconds: int,
    services: tuple[str, ...] = ("api", "web", "auth"),
    *,
    seed: int = 1,
    latency: object = None,
    rate: object = None,
) -> list[Record]:
    """About 10 lines/s per service, latency 80..120 ms, 1 % errors; `latency(s)`/`rate(s)`
    override api's latency range and line count at second s."""
    rnd = random.Random(seed)
    out: list[Record] = []
    for s in range(seconds):
        for svc in services:
            n = rnd.randint(8, 12)
            if rate is not None and svc == "api":
                n = rate(s) or n  # type: ignore[operator]
            lo, hi = (80.0, 120.0)
            if latency is not None and svc == "api":
                lo, hi = latency(s) or (lo, hi)  # type: ignore[operator]
            for i in range(n):
                error = rnd.random() < 0.01
                out.append(
                    Record(
                        "access",
                        message=f"GET /item/{i}",
                        ts=T0 + s + i / n,
                        service=svc,
                        severity=3 if error else 6,
                        http=Http(ip=f"10.0.0.{rnd.randint(1, 250)}", status=500 if error else 200,
                                  latency_ms=rnd.uniform(lo, hi)),
                    )
                )
    return out


def test_steady_stream_gives_no_event() -> None:
    for seed in (1, 2):
        assert replay(stream(1800, seed=seed), config(), template) == []


def test_latency_jump_gives_one_event_with_its_figures() -> None:
    records = stream(900, ("api",), latency=lambda s: (380.0, 420.0) if s >= 600 else None)
    events = replay(records, config(), template)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ZScore)
    assert (event.type, event.key, event.metric, event.ts) == ("zscore", "api", "p95_latency_ms", T0 + 600.0)

    # Recompute from the raw records: one p95 per 10 s interval, the first skipped (partial).
    per_interval: dict[int, list[float]] = {}
    for r in records:
        per_interval.setdefault(int(r.ts - T0) // 10, []).append(r.http.latency_ms)
    p95 = {i: quantile(histogram_of(v), 0.95) for i, v in per_interval.items()}
    raw = sorted(per_interval[60])
    assert event.value == p95[60]
    assert abs(event.value - raw[math.ceil(0.95 * len(raw)) - 1]) <= 0.01 * raw[-1]
    alpha, mean, var = 2 / 61, p95[1], 0.0
    for i in range(2, 60):
        diff = p95[i] - mean
        mean += alpha * diff
        var = (1 - alpha) * (var + alpha * diff * diff)
    std = max(math.sqrt(var), 1.0, 0.05 * mean)
    assert event.samples == 59
    assert event.mean == pytest.approx(mean, rel=1e-12)
    assert event.std == pytest.approx(std, rel=1e-12)
    assert event.z == pytest.approx((event.value - mean) / std, rel=1e-12)
    assert event.z > 4.0


def test_rate_jump_fires_lines_per_s() -> None:
    records = stream(700, ("api",), rate=lambda s: 60 if s >= 500 else None)
    events = replay(records, config(), template)
    assert [(e.metric, e.ts, e.value) for e in events] == [("lines_per_s", T0 + 500.0, 60.0)]


def test_error_rate_jump_fires_error_rate() -> None:
    records = stream(700, ("api",))
    records = [
        Record(r.format, message=r.message, ts=r.ts, service=r.service, severity=3, http=r.http)
        if 500 <= r.ts - T0 < 510 and i % 2 == 0 else r
        for i, r in enumerate(records)
    ]
    events = [e for e in replay(records, config(), template) if e.type == "zscore"]
    assert [(e.metric, e.ts) for e in events] == [("error_rate", T0 + 500.0)]
    assert 0.4 < events[0].value < 0.6


@pytest.mark.parametrize(("blip", "fires"), [(30, False), (31, True)])
def test_min_samples_sits_exactly_at_its_value(blip: int, fires: bool) -> None:
    # Interval 0 is not a sample, so interval i is compared with i - 1 samples.
    records = stream(
        400, ("api",), latency=lambda s: (400.0, 420.0) if s // 10 == blip else None
    )
    events = replay(records, config(min_samples=30), template)
    assert [(e.metric, e.ts, e.samples) for e in events] == (
        [("p95_latency_ms", T0 + blip * 10.0, 30)] if fires else []
    )


def test_silent_intervals_are_not_samples() -> None:
    # A service that logs in bursts with long silences in between: no "rate dropped" storm.
    records = [r for r in stream(1200, ("api",)) if (r.ts - T0) // 100 % 2 == 0]
    assert replay(records, config(), template) == []


def test_services_beyond_the_limit_are_counted() -> None:
    from logtallyd.detect.engine import Engine
    from logtallyd.detect.feed import Feed
    from logtallyd.detect.replay import build_feeds

    engine = Engine(config(max_services=2))
    for data in build_feeds(stream(30, ("a", "b", "c")), engine.config, template):
        engine.consume(Feed.from_bytes(data))
    engine.flush()
    assert sorted(engine.zscore.state.services) == ["a", "b"]
    assert engine.stats()["untracked_zscore_lines"] == sum(
        1 for r in stream(30, ("a", "b", "c")) if r.service == "c"
    )


@pytest.mark.parametrize(("expire_s", "fires"), [(3600, True), (100, False)])
def test_a_service_silent_past_expire_s_starts_a_new_baseline(expire_s: int, fires: bool) -> None:
    before = stream(400, ("api",), seed=3)
    after = [  # 300 s of silence, then five times the rate
        Record(r.format, message=r.message, ts=r.ts + 700, service=r.service, severity=r.severity, http=r.http)
        for r in stream(60, ("api",), seed=4, rate=lambda s: 50)
    ]
    events = replay(before + after, config(expire_s=expire_s), template)
    assert [(e.metric, e.ts) for e in events] == ([("lines_per_s", T0 + 700.0)] if fires else [])


@pytest.mark.parametrize("end, fires", [(905, False), (909, False), (910, True)])
def test_an_interval_the_input_ends_inside_is_not_a_sample(end: int, fires: bool) -> None:
    """Input ending inside an interval cuts it short (as a service's first interval is): the
    drain at the end of a replay must not read it as a drop. An interval the input fills to
    its last second is judged as any other, here a flood in the last interval."""
    records = [r for r in stream(end) if r.ts is not None and r.ts < T0 + end]
    if fires:
        records += [Record("app", message="flood", ts=T0 + 905 + i / 100, service="api", severity=6)
                    for i in range(300)]
        records.sort(key=lambda r: r.ts or 0)
    events = replay(records, config(), template)
    assert [(e.key, e.metric, e.ts) for e in events if isinstance(e, ZScore)] == (
        [("api", "lines_per_s", T0 + 900.0)] if fires else [])
