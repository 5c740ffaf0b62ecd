"""The detection engine: event-time order whatever the batch order, watermarks, late data,
gaps, snapshots, SIGHUP, and the `[detect]` config block."""
from __future__ import annotations

import random
import re
import tomllib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.daemon.config import Config, ConfigError, check_config, decode_config
from logtallyd.detect.config import DetectConfig, SpikeConfig
from logtallyd.detect.engine import DetectFigures, Engine
from logtallyd.detect.events import decode_event, encode_event
from logtallyd.detect.feed import Feed
from logtallyd.detect.replay import build_feeds, replay
from logtallyd.records import Http, Record

T0 = 1_700_000_000

DEFAULT_TOML = """
[detect]
keep_events = 1000          # the last N events answer `EVENTS [n]`
max_empty_walk_s = 3600     # seconds without data walked in a row before jumping the gap

[detect.spike]              # ERROR-or-worse lines in a sliding window
enabled = true
window_s = 60
threshold = 50              # per service
resolve_below = 10          # `resolved` once the window holds fewer (hysteresis)
overall_threshold = 100     # all services together, key "*"
overall_resolve_below = 20
overall_when_service_active = false   # stay silent if a service spike already said it
top_templates = 5
max_services = 1000

[detect.zscore]             # per service: lines/s, error rate, p95 latency
enabled = true
interval_s = 10             # one sample per service per interval
window = 60                 # EWMA span in samples
min_samples = 30
k = 4.0
rel_floor = 0.05            # std used is max(std, floor, rel_floor * |mean|)
lines_floor = 1.0
error_rate_floor = 0.02
latency_floor_ms = 1.0
min_latency_count = 5
max_services = 1000
expire_s = 3600

[detect.suspicious]         # per client IP, HTTP 4xx/5xx in a sliding window
enabled = true
window_s = 60
min_bad = 100
min_requests = 20
share = 0.8
resolve_ratio = 0.5
max_ips = 10000

[detect.newtemplate]        # ERROR-or-worse templates never seen before
enabled = true
warmup_s = 300
max_templates = 100000
max_grouped = 2000
max_events_per_minute = 20

[detect.pattern]
max_keys = 10000            # per pattern
max_matches_per_feed = 10000

[[detect.patterns]]         # steps: substrings, or regular expressions written "re:..."
name = "ssh_brute_force"
key = "ip"                  # "ip" | "host" | "service"
steps = ["Failed password", "Failed password", "Failed password", "Accepted password"]
max_gap_s = 60.0
"""


def template(message: str) -> str:
    return re.sub(r"\d+", "<n>", message)


def workload(seed: int = 3) -> list[Record]:
    """Twenty minutes of traffic with one of everything: an error burst, a brute force, a
    latency jump, a scanning IP and a new error template."""
    rnd = random.Random(seed)
    out: list[Record] = []
    for s in range(1200):
        for svc in ("api", "web"):
            n = rnd.randint(8, 12)
            for i in range(n):
                lat = rnd.uniform(380, 420) if svc == "api" and s >= 900 else rnd.uniform(80, 120)
                out.append(Record("access", message=f"GET /p/{i}", ts=T0 + s + i / n, service=svc,
                                  severity=6, http=Http(ip=f"10.0.0.{rnd.randint(1, 50)}", status=200,
                                                        latency_ms=lat)))
        if 400 <= s < 405:
            out += [Record("app", message=f"db timeout after {k} ms", ts=T0 + s + k / 100,
                           service="web", severity=3) for k in range(20)]
        if 500 <= s < 504:
            text = "Accepted password" if s == 503 else "Failed password"
            out.append(Record("rfc3164", message=f"{text} for root from 203.0.113.9 port 22 ssh2",
                              ts=float(T0 + s), host="h1", service="sshd", severity=6))
        if 600 <= s < 610:
            out += [Record("access", message=f"GET /wp-admin/{k}.php", ts=T0 + s + k / 100,
                           service="web", severity=6, http=Http(ip="198.51.100.66", status=404))
                    for k in range(12)]
        if s == 700:
            out.append(Record("app", message="segfault in worker 7", ts=T0 + s + 0.5, service="api", severity=2))
    out.sort(key=lambda r: r.ts)
    return out


WORKLOAD = workload()


def test_workload_events_are_the_expected_ones() -> None:
    events = replay(WORKLOAD, DetectConfig(), template)
    # In detection order: a z-score event is stamped with the start of its interval and
    # found at its end. The burst also lifts web's lines/s and error rate, the scan its lines/s.
    assert [(e.type, e.key, e.ts, getattr(e, "metric", "")) for e in events] == [
        ("new_template", "web", T0 + 400.0, ""),
        ("error_spike", "web", T0 + 402.0, ""),  # 20 a second: 60 >= 50 at 402
        ("zscore", "web", T0 + 400.0, "lines_per_s"),
        ("zscore", "web", T0 + 400.0, "error_rate"),
        ("resolved", "web", T0 + 464.0, ""),  # 404's 20 leave the window [405, 464]
        ("pattern", "203.0.113.9", T0 + 503.0, ""),
        ("suspicious_ip", "198.51.100.66", T0 + 601.0, ""),  # 24 requests, all 404: share
        ("zscore", "web", T0 + 600.0, "lines_per_s"),
        ("resolved", "198.51.100.66", T0 + 668.0, ""),  # [609, 668]: 12 requests, 12 bad
        ("new_template", "api", T0 + 700.5, ""),
        ("zscore", "api", T0 + 900.0, "p95_latency_ms"),
    ]


def stream(feeds: list[bytes], seconds: list[int], seed: int, in_flight: int = 4) -> list:
    """Batches complete out of order (up to `in_flight` at once); the watermark is the earliest
    second of any batch not merged yet, as the server computes it."""
    rnd = random.Random(seed)
    engine = Engine(DetectConfig())
    waiting = list(range(len(feeds)))
    flying: list[int] = []
    events = []
    while waiting or flying:
        while waiting and len(flying) < in_flight:
            flying.append(waiting.pop(0))
        done = flying.pop(rnd.randrange(len(flying)))
        engine.consume(Feed.from_bytes(feeds[done]))
        pending = flying + waiting
        if pending:
            events += engine.advance(min(seconds[i] for i in pending))
    return events + engine.flush()


def test_shuffled_batches_give_the_same_events_as_a_replay() -> None:
    expected = replay(WORKLOAD, DetectConfig(), template)
    for batch, seed in ((97, 1), (500, 2), (1, 3)):
        if batch == 1:
            records = WORKLOAD[len(WORKLOAD) // 2 - 3000 : len(WORKLOAD) // 2 + 3000]
            expected_part = replay(records, DetectConfig(), template)
        else:
            records, expected_part = WORKLOAD, expected
        feeds = build_feeds(records, DetectConfig(), template, batch_lines=batch)
        seconds = [min(Feed.from_bytes(f).data.seconds) for f in feeds]
        assert stream(feeds, seconds, seed) == expected_part
        # fully shuffled, all merged before any processing: the same again
        engine = Engine(DetectConfig())
        order = list(range(len(feeds)))
        random.Random(seed).shuffle(order)
        for i in order:
            engine.consume(Feed.from_bytes(feeds[i]))
        assert engine.flush() == expected_part


SMALL = [r for r in WORKLOAD if 395 <= r.ts - T0 < 520]  # the burst and the brute force
SMALL_EVENTS = replay(SMALL, DetectConfig(), template)


def test_small_workload_has_a_spike_and_a_pattern() -> None:
    assert [e.type for e in SMALL_EVENTS] == ["error_spike", "resolved", "pattern"]


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, len(SMALL) - 1), max_size=30, unique=True), seed=st.integers(0, 10**6))
def test_any_batching_in_any_completion_order_gives_the_same_events(cuts: list[int], seed: int) -> None:
    bounds = [0, *sorted(cuts), len(SMALL)]
    feeds = [
        build_feeds(SMALL[a:b], DetectConfig(), template, batch_lines=b - a, origin=origin)[0]
        for origin, (a, b) in enumerate(zip(bounds, bounds[1:]))
    ]
    seconds = [min(Feed.from_bytes(f).data.seconds) for f in feeds]
    assert stream(feeds, seconds, seed, in_flight=5) == SMALL_EVENTS


def test_steady_stream_gives_no_event() -> None:
    rnd = random.Random(11)
    records = [
        Record("access", message=f"GET /q/{i}", ts=T0 + s + i / 10, service=svc, severity=6,
               http=Http(ip=f"10.1.0.{rnd.randint(1, 99)}", status=rnd.choice((200, 200, 200, 304, 404)),
                         latency_ms=rnd.uniform(20, 40)))
        for s in range(900) for svc in ("api", "web", "auth") for i in range(rnd.randint(8, 12))
    ]
    assert replay(records, DetectConfig(), template) == []


def test_late_seconds_are_counted_and_dropped() -> None:
    cfg = DetectConfig()
    engine = Engine(cfg)
    early = [Record("app", message="x", ts=T0 + s, service="a", severity=6) for s in range(5)]
    for data in build_feeds(early, cfg, template):
        engine.consume(Feed.from_bytes(data))
    engine.advance(T0 + 5)
    assert engine.next_second == T0 + 5
    late = [Record("app", message="y", ts=T0 + 4.5, service="a", severity=6)] * 3
    late += [Record("app", message="y", ts=T0 + 5.5, service="a", severity=6)]
    for data in build_feeds(late, cfg, template):
        engine.consume(Feed.from_bytes(data))
    assert engine.stats()["late_lines"] == 3
    assert engine.stats()["pending_seconds"] == 1


def test_figures_are_the_stats_object() -> None:
    cfg = DetectConfig(spike=SpikeConfig(threshold=2, resolve_below=1, max_services=1))
    engine = Engine(cfg)
    records = [Record("app", message="boom 1", ts=T0 + 0.5, service="a", severity=3)] * 2
    records += [Record("app", message="boom 2", ts=T0 + 0.5, service="b", severity=3)] * 3
    records += [Record("app", message="fine", ts=T0 + 1.5, service="a", severity=6)]
    for data in build_feeds(records, cfg, template):
        engine.consume(Feed.from_bytes(data))
    assert [e.key for e in engine.advance(T0 + 1)] == ["a"]  # "b" is beyond max_services
    figures = engine.figures()
    assert figures == DetectFigures(
        counters={"feeds": 1, "records": 6, "dropped_matches": 0, "events_error_spike": 1},
        pending_seconds=1, untracked_spike_errors=3, untracked_zscore_lines=0,
        untracked_ip_requests=0, untracked_pattern_keys=0, suppressed_new_templates=0, forgotten_senders=0,
    )
    assert list(engine.stats().items()) == [
        ("feeds", 1), ("records", 6), ("dropped_matches", 0), ("events_error_spike", 1),
        ("pending_seconds", 1), ("untracked_spike_errors", 3), ("untracked_zscore_lines", 0),
        ("untracked_ip_requests", 0), ("untracked_pattern_keys", 0), ("suppressed_new_templates", 0),
        ("forgotten_senders", 0),
    ]


def test_a_watermark_below_all_data_does_not_start_the_clock() -> None:
    cfg = DetectConfig()
    engine = Engine(cfg)
    later = [Record("app", message="b", ts=T0 + 10.0, service="a", severity=6)]
    earlier = [Record("app", message="a", ts=T0 + 5.0, service="a", severity=6)]
    engine.consume(Feed.from_bytes(build_feeds(later, cfg, template)[0]))
    assert engine.advance(T0 + 5) == [] and engine.next_second is None
    engine.consume(Feed.from_bytes(build_feeds(earlier, cfg, template)[0]))
    engine.advance(T0 + 6)
    assert engine.next_second == T0 + 6 and engine.stats().get("late_lines", 0) == 0


def test_long_gaps_walk_a_bounded_number_of_empty_seconds() -> None:
    cfg = DetectConfig(max_empty_walk_s=100)
    engine = Engine(cfg)
    two_years = 2 * 365 * 86400
    records = [Record("app", message=f"boom {i}", ts=T0 + i / 100, service="a", severity=3) for i in range(60)]
    records += [Record("app", message="back", ts=float(T0 + two_years), service="a", severity=6)]
    for data in build_feeds(records, cfg, template):
        engine.consume(Feed.from_bytes(data))
    events = engine.advance(T0 + two_years + 10)
    assert [(e.type, e.ts) for e in events] == [("error_spike", T0 + 0.0), ("resolved", T0 + 60.0)]
    # walked: T0 (data), 100 empty seconds, then the jump to the data, then 9 more (the cap again
    # restarts after data), so skipped = the gap minus the 100 walked
    assert engine.stats()["skipped_seconds"] == two_years - 1 - 100
    assert engine.next_second == T0 + two_years + 10


def test_snapshot_resumes_exactly() -> None:
    cfg = DetectConfig()
    feeds = build_feeds(WORKLOAD, cfg, template, batch_lines=1000)
    whole = Engine(cfg)
    for data in feeds:
        whole.consume(Feed.from_bytes(data))
    expected = whole.flush()
    engine = Engine(cfg)
    events = []
    half = len(feeds) // 2
    for data in feeds[:half]:
        engine.consume(Feed.from_bytes(data))
    events += engine.advance(min(Feed.from_bytes(feeds[half]).data.seconds))
    snapshot = engine.to_bytes()
    engine = Engine.from_bytes(snapshot)
    for data in feeds[half:]:
        engine.consume(Feed.from_bytes(data))
    events += engine.flush()
    assert events == expected
    assert engine.recent(3) == expected[-3:]
    assert Engine.from_bytes(engine.to_bytes()).recent(100) == expected


def test_reconfigure_keeps_open_episodes() -> None:
    cfg = DetectConfig()
    engine = Engine(cfg)
    burst = [Record("app", message="x", ts=T0 + i / 100, service="a", severity=3) for i in range(60)]
    for data in build_feeds(burst, cfg, template):
        engine.consume(Feed.from_bytes(data))
    assert [e.type for e in engine.advance(T0 + 1)] == ["error_spike"]
    new = msgspec.convert({"keep_events": 1, "zscore": {"k": 3.0}}, DetectConfig)
    engine.reconfigure(new)
    events = engine.advance(T0 + 100)
    assert [(e.type, e.ts) for e in events] == [("resolved", T0 + 60.0)]
    assert engine.recent(5) == events  # keep_events = 1


def test_recent_returns_the_last_n_oldest_first() -> None:
    engine = Engine(DetectConfig(keep_events=4))
    for data in build_feeds(WORKLOAD, engine.config, template):
        engine.consume(Feed.from_bytes(data))
    events = engine.flush()
    assert engine.recent(2) == events[-2:]
    assert engine.recent(10) == events[-4:]
    assert engine.recent(0) == []


def test_events_round_trip_as_json_with_type_first() -> None:
    for event in replay(WORKLOAD, DetectConfig(), template):
        data = encode_event(event)
        assert data.startswith(b'{"type":"%s","ts":' % event.type.encode())
        assert decode_event(data) == event


def test_default_toml_block_is_the_defaults() -> None:
    raw = tomllib.loads(DEFAULT_TOML)["detect"]
    assert msgspec.convert(raw, DetectConfig) == DetectConfig()
    assert check_config(Config(detect=DetectConfig())) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"spike": {"resolve_below": 60}}, "detect.spike.resolve_below must be in 1..spike.threshold (got 60)"),
        ({"zscore": {"k": 0}}, "Expected `float` > 0.0 - at `$.detect.zscore.k`"),
        ({"max_empty_walk_s": 30}, "detect.max_empty_walk_s must cover the longest window (60 s)"),
        ({"patterns": [{"name": "a", "steps": ["x"]}, {"name": "a", "steps": ["y"]}]},
         "detect.patterns[1].name must be unique (got 'a')"),
        ({"patterns": [{"name": "", "steps": ["x"]}]}, "Expected `str` of length >= 1 - at `$.detect.patterns[0].name`"),
        ({"patterns": [{"name": "a", "steps": ["re:("]}]}, "detect.patterns[0].steps[0]: invalid regular"),
        ({"patterns": [{"name": "a", "steps": []}]}, "Expected `array` of length >= 1 - at `$.detect.patterns[0].steps`"),
        ({"patterns": [{"name": "a", "steps": ["re:"]}]}, "detect.patterns[0].steps[0] must not be empty"),
    ],
)
def test_config_limits_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        decode_config({"detect": raw}, "config.toml")
    assert str(caught.value).startswith("config.toml: " + message)


def test_unknown_keys_and_bad_pattern_keys_are_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match="spike"):
        msgspec.convert({"spike": {"treshold": 5}}, DetectConfig)
    with pytest.raises(msgspec.ValidationError, match="key"):
        msgspec.convert({"patterns": [{"name": "a", "steps": ["x"], "key": "user"}]}, DetectConfig)


def test_streaming_through_the_driver_equals_replay() -> None:
    from logtallyd.detect.driver import Driver  # the event clock, fed in order by the reorder buffer
    from logtallyd.ingest.reorder import Reorder

    cfg = DetectConfig()
    feeds = build_feeds(WORKLOAD, cfg, template, batch_lines=300)
    rnd = random.Random(5)
    engine = Engine(cfg)
    driver, events = Driver(engine, lateness_s=10), []
    reorder: Reorder[bytes] = Reorder()
    flying: list[int] = []
    waiting = list(range(len(feeds)))
    while waiting or flying:
        while waiting and len(flying) < 4:
            flying.append(waiting.pop(0))
        seq = flying.pop(rnd.randrange(len(flying)))
        for data in reorder.put(seq, feeds[seq]):
            events += driver.add(Feed.from_bytes(data), wall=0.0)
    events += driver.finish()
    assert events == replay(WORKLOAD, cfg, template)
    assert engine.stats().get("late_lines", 0) == 0


@pytest.mark.parametrize("end", [1195, 1200])
def test_a_live_driver_whose_input_stops_ends_as_a_replay_does(end: int) -> None:
    """After the input stops the server's event clock runs on at wall pace: the events it then
    finds (resolved episodes, the last z-score interval) are those `analyze --events` lists,
    whether the input ends inside an interval or at its end (with a flood in the last one)."""
    from logtallyd.detect.driver import Driver

    cfg = DetectConfig()
    records = [r for r in WORKLOAD if r.ts is not None and r.ts < T0 + end]
    if end == 1200:
        records += [Record("app", message="retry", ts=T0 + 1191 + i / 100, service="api", severity=6)
                    for i in range(800)]
        records.sort(key=lambda r: r.ts or 0)
    expected = replay(records, cfg, template)
    assert any(e.type == "zscore" and e.ts == T0 + 1190 for e in expected) == (end == 1200)
    driver, events = Driver(Engine(cfg), lateness_s=10), []
    for seq, data in enumerate(build_feeds(records, cfg, template, batch_lines=300)):
        events += driver.add(Feed.from_bytes(data), wall=0.0)
    for wall in range(1, 200):
        events += driver.tick(float(wall))
    assert events == expected


def test_a_line_from_the_future_does_not_move_the_event_clock() -> None:
    """One line stamped years ahead (a bad clock) is counted as `future_lines` and dropped:
    the lines after it are not late and the events are those of the stream without it."""
    from logtallyd.detect.driver import Driver

    cfg = DetectConfig()
    now = float(T0 + 1300)
    bad = Record("app", message="clock says 2029", ts=T0 + 10**8, service="api", severity=3)
    records = WORKLOAD[:3000] + [bad] + WORKLOAD[3000:]
    driver, events = Driver(Engine(cfg), lateness_s=10, max_future_s=300, clock=lambda: now), []
    for seq, data in enumerate(build_feeds(records, cfg, template, batch_lines=300)):
        events += driver.add(Feed.from_bytes(data), wall=0.0)
    events += driver.finish()
    assert events == replay(WORKLOAD, cfg, template)
    assert driver.engine.stats()["future_lines"] == 1
    assert driver.engine.stats().get("late_lines", 0) == 0
