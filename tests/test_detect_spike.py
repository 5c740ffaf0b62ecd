"""Error spike detector: rising edge once, `resolved` once, hysteresis, limits at their edge."""
from __future__ import annotations

import re

from logtallyd.detect.config import DetectConfig, SpikeConfig
from logtallyd.detect.engine import Engine
from logtallyd.detect.events import ErrorSpike, Resolved, TemplateCount
from logtallyd.detect.feed import Feed
from logtallyd.detect.replay import build_feeds, replay
from logtallyd.records import Record

T0 = 1_700_000_000  # a multiple of 10 and of 60
SPIKE = SpikeConfig(
    window_s=10, threshold=20, resolve_below=5, overall_threshold=30, overall_resolve_below=5
)


def template(message: str) -> str:
    return re.sub(r"\d+", "<n>", message)


def config(**spike: object) -> DetectConfig:
    fields = {f: getattr(SPIKE, f) for f in SPIKE.__struct_fields__}
    fields.update(spike)
    return DetectConfig(spike=SpikeConfig(**fields), patterns=[])


def info(second: int, service: str = "api", i: int = 0) -> Record:
    return Record("app", message=f"request {i} ok", ts=T0 + second + i / 100, service=service, severity=6)


def error(second: int, message: str, service: str = "api", i: int = 0) -> Record:
    return Record("app", message=message, ts=T0 + second + i / 100, service=service, severity=3)


def background(seconds: range, services: tuple[str, ...] = ("api",)) -> list[Record]:
    return [info(s, svc, i) for s in seconds for svc in services for i in range(2)]


def by_time(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: r.ts)


def test_burst_gives_one_spike_and_one_resolved() -> None:
    records = background(range(100))
    for s in range(50, 55):  # 10 errors a second for 5 s: 7 timeouts, 3 disk full
        records += [error(s, f"db timeout after {30 + i} ms", i=i) for i in range(7)]
        records += [error(s, "disk full on /dev/sda1", i=7 + i) for i in range(3)]
    events = replay(by_time(records), config(), template, batch_lines=37)
    assert events == [
        ErrorSpike(
            float(T0 + 51), "spike", "api", 20, 10, 20,
            [TemplateCount("db timeout after <n> ms", 14), TemplateCount("disk full on /dev/sda<n>", 6)],
        ),
        # the window [s-9, s] holds 10 errors until 54's leave it at 64
        Resolved(float(T0 + 64), "spike", "api", "error_spike", 0, 50, float(T0 + 51)),
    ]
    assert [e.type for e in events] == ["error_spike", "resolved"]


def test_errors_spread_over_services_fire_overall_only() -> None:
    services = ("a", "b", "c", "d", "e")
    records = background(range(100), services)
    for s in range(50, 60):
        records += [error(s, "upstream reset", svc) for svc in services]
    events = replay(by_time(records), config(), template)
    assert events == [
        ErrorSpike(float(T0 + 55), "spike", "*", 30, 10, 30, [TemplateCount("upstream reset", 30)]),
        Resolved(float(T0 + 69), "spike", "*", "error_spike", 0, 50, float(T0 + 55)),
    ]


def test_overall_also_fires_when_configured() -> None:
    records = [error(5, f"boom {i}", i=i) for i in range(40)]
    events = replay(records, config(overall_when_service_active=True), template)
    assert [(e.type, e.key, e.ts) for e in events] == [
        ("error_spike", "api", T0 + 5.0),
        ("error_spike", "*", T0 + 5.0),
        ("resolved", "api", T0 + 15.0),
        ("resolved", "*", T0 + 15.0),
    ]


def test_hysteresis_between_thresholds_is_one_episode() -> None:
    counts = {s: 2 for s in range(0, 10)} | {s: 1 for s in range(10, 20)} | {s: 2 for s in range(20, 30)}
    records = [error(s, "flaky", i=i) for s, n in counts.items() for i in range(n)]
    events = replay(records, config(), template)
    # 20 at s=9 (fire); down to 10 at s=19 (>= 5: still active); 20 again at 29 (no re-fire);
    # the window [28, 37] holds 4 < 5 at s=37.
    assert [(e.type, e.ts) for e in events] == [("error_spike", T0 + 9.0), ("resolved", T0 + 37.0)]
    assert events[1].peak == 20


def test_threshold_is_reached_exactly_at_its_value() -> None:
    below = [error(3, "x", i=i) for i in range(19)]
    assert replay(below, config(), template) == []
    at = [error(3, "x", i=i) for i in range(20)]
    assert [(e.type, e.count) for e in replay(at, config(), template)] == [
        ("error_spike", 20), ("resolved", 0)
    ]


def test_resolves_on_a_watermark_without_any_new_line() -> None:
    engine = Engine(config())
    for data in build_feeds([error(0, "x", i=i) for i in range(25)], config(), template):
        engine.consume(Feed.from_bytes(data))
    assert [e.type for e in engine.advance(T0 + 1)] == ["error_spike"]
    assert engine.advance(T0 + 10) == []  # window [0, 9] still holds all 25
    assert [(e.type, e.ts) for e in engine.advance(T0 + 11)] == [("resolved", T0 + 10.0)]


def test_services_beyond_the_limit_are_counted_not_tracked() -> None:
    records = [error(1, "x", svc, i) for svc in ("a", "b", "c") for i in range(20)]
    engine = Engine(config(max_services=2))
    for data in build_feeds(records, engine.config, template):
        engine.consume(Feed.from_bytes(data))
    events = engine.advance(T0 + 2)
    assert [(e.type, e.key) for e in events] == [("error_spike", "a"), ("error_spike", "b")]
    assert engine.stats()["untracked_spike_errors"] == 20


def test_disabled_detector_is_silent() -> None:
    records = [error(1, "x", i=i) for i in range(100)]
    assert replay(records, config(enabled=False), template) == []


def test_top_templates_are_limited_and_ranked() -> None:
    names = "abcdefgh"
    records = [error(1, f"kind {names[k]} failure", i=k) for k in range(8) for _ in range(k + 1)]
    records += [error(1, f"kind {n} failure", i=9) for n in ("x", "y") for _ in range(6)]
    events = replay(records, config(top_templates=4), template)
    # h=8, g=7, then f, x and y tie at 6: ties go by template text
    assert events[0].count == 36 + 12
    assert events[0].top_templates == [
        TemplateCount("kind h failure", 8),
        TemplateCount("kind g failure", 7),
        TemplateCount("kind f failure", 6),
        TemplateCount("kind x failure", 6),
    ]
