"""Ordered temporal patterns: brute force from one IP fires once; spread over IPs, out of
order or too slow it does not; state per key is bounded and expires."""
from __future__ import annotations

import re

import pytest

from logtallyd.detect.config import DetectConfig, Pattern, PatternLimits, SSH_BRUTE_FORCE
from logtallyd.detect.engine import Engine
from logtallyd.detect.events import PatternMatch
from logtallyd.detect.feed import Feed
from logtallyd.detect.replay import build_feeds, replay
from logtallyd.records import Http, Record

T0 = 1_700_000_000
FAIL = "Failed password for root from {ip} port 22 ssh2"
OK = "Accepted password for root from {ip} port 22 ssh2"


def template(message: str) -> str:
    return re.sub(r"\d+", "<n>", message)


def ssh(t: float, text: str, ip: str = "203.0.113.7", host: str = "web1") -> Record:
    return Record("rfc3164", message=text.format(ip=ip), ts=T0 + t, host=host, service="sshd", severity=6)


def brute(start: float, ip: str = "203.0.113.7", step: float = 5.0) -> list[Record]:
    return [ssh(start + i * step, FAIL, ip) for i in range(3)] + [ssh(start + 3 * step, OK, ip)]


def run(records: list[Record], *patterns: Pattern, batch: int = 3, **limits: int) -> list:
    cfg = DetectConfig(patterns=list(patterns) or [SSH_BRUTE_FORCE], pattern=PatternLimits(**limits))
    return replay(records, cfg, template, batch_lines=batch)


def test_brute_force_from_one_ip_fires_once() -> None:
    records = brute(10.25)
    events = run(records)
    assert events == [
        PatternMatch(
            T0 + 25.25, "pattern", "203.0.113.7", "ssh_brute_force", "ip",
            [T0 + 10.25, T0 + 15.25, T0 + 20.25, T0 + 25.25],
            [r.message for r in records],
        )
    ]


def test_interleaved_noise_and_other_ips_do_not_break_it() -> None:
    records = brute(10)
    noise = [ssh(11 + i, "Connection closed by {ip}", "198.51.100.1") for i in range(15)]
    noise += [ssh(12 + i, FAIL, f"198.51.100.{i + 2}") for i in range(10)]
    events = run(sorted(records + noise, key=lambda r: r.ts))
    assert [(e.key, e.timestamps[-1]) for e in events] == [("203.0.113.7", T0 + 25.0)]


def test_spread_over_many_ips_does_not_fire() -> None:
    records = [ssh(10 + i, FAIL, f"198.51.100.{i % 4}") for i in range(12)]
    records += [ssh(30 + i, OK, f"198.51.100.{i + 10}") for i in range(4)]
    assert run(records) == []


@pytest.mark.parametrize("order", [(3, 0, 1, 2), (0, 1, 3, 2), (0, 3, 1, 2), (3, 2, 1, 0)])
def test_out_of_order_does_not_fire(order: tuple[int, ...]) -> None:
    texts = [FAIL, FAIL, FAIL, OK]
    records = [ssh(10 + 5 * i, texts[k]) for i, k in enumerate(order)]
    assert run(records) == []


@pytest.mark.parametrize(("gap", "fires"), [(60.0, True), (60.001, False)])
def test_max_gap_sits_exactly_at_its_value(gap: float, fires: bool) -> None:
    records = [ssh(0, FAIL), ssh(1, FAIL), ssh(2, FAIL), ssh(2 + gap, OK)]
    assert len(run(records)) == (1 if fires else 0)


def test_more_failures_report_the_latest_three() -> None:
    records = [ssh(i, FAIL) for i in range(6)] + [ssh(7, OK)]
    (event,) = run(records)
    assert event.timestamps == [T0 + 3.0, T0 + 4.0, T0 + 5.0, T0 + 7.0]


def test_a_later_start_rescues_a_sequence_the_first_start_cannot_finish() -> None:
    pattern = Pattern(name="fail_then_ok", steps=["Failed", "Accepted"], max_gap_s=10)
    records = [ssh(0, FAIL), ssh(5, FAIL), ssh(12, OK)]
    (event,) = run(records, pattern)
    assert event.timestamps == [T0 + 5.0, T0 + 12.0]


def test_one_line_never_serves_two_steps() -> None:
    pattern = Pattern(name="twice", steps=["Failed", "Failed"], max_gap_s=10)
    assert run([ssh(0, FAIL)], pattern) == []
    assert len(run([ssh(0, FAIL), ssh(1, FAIL)], pattern)) == 1


def test_a_match_consumes_its_lines() -> None:
    records = brute(0) + [ssh(16, OK)]  # a second Accepted right after: no second event
    assert len(run(records)) == 1
    assert len(run(brute(0) + brute(20))) == 2


def test_same_timestamp_follows_stream_order_across_batches() -> None:
    # RFC 3164 stamps have whole seconds: order within one second is arrival order.
    same = [ssh(5, FAIL), ssh(5, FAIL), ssh(5, FAIL), ssh(5, OK)]
    for batch in (1, 2, 3, 4):
        assert len(run(same, batch=batch)) == 1
    assert run([same[3]] + same[:3], batch=1) == []


def test_same_timestamp_order_survives_batches_completing_backwards() -> None:
    same = [ssh(5, FAIL), ssh(5, FAIL), ssh(5, FAIL), ssh(5, OK)]
    cfg = DetectConfig()
    for records, expected in ((same, 1), ([same[3]] + same[:3], 0)):
        engine = Engine(cfg)
        for data in reversed(build_feeds(records, cfg, template, batch_lines=1)):
            engine.consume(Feed.from_bytes(data))
        assert len(engine.flush()) == expected


def test_keys_host_and_service_and_regex_steps() -> None:
    pattern = Pattern(
        name="oom_then_restart", key="host", steps=["re:Out of memory: Kill(ed)? process", "Started"],
        max_gap_s=30,
    )
    records = [
        Record("rfc3164", message="Out of memory: Killed process 42 (java)", ts=T0 + 1, host="db1"),
        Record("rfc3164", message="Started java.service", ts=T0 + 3, host="db2"),
        Record("rfc3164", message="Started java.service", ts=T0 + 4, host="db1"),
    ]
    (event,) = run(records, pattern)
    assert (event.key, event.field, event.timestamps) == ("db1", "host", [T0 + 1.0, T0 + 4.0])
    by_service = Pattern(name="svc", key="service", steps=["a", "b"], max_gap_s=5)
    records = [Record("app", message="a", ts=T0, service="x"), Record("app", message="b", ts=T0 + 1, service="x")]
    assert [e.key for e in run(records, by_service)] == ["x"]


def test_ip_comes_from_http_fields_first() -> None:
    pattern = Pattern(name="login_abuse", steps=["POST /login"] * 2, max_gap_s=5)
    records = [
        Record("access", message="POST /login HTTP/1.1 from 10.9.9.9", ts=T0 + i,
               http=Http(ip="192.0.2.1", status=401))
        for i in range(2)
    ]
    assert [e.key for e in run(records, pattern)] == ["192.0.2.1"]


def test_keys_are_bounded_and_expire() -> None:
    cfg = DetectConfig(patterns=[SSH_BRUTE_FORCE], pattern=PatternLimits(max_keys=2))
    engine = Engine(cfg)
    records = [ssh(0, FAIL, ip) for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3")]
    records += [ssh(1 + i, FAIL, "192.0.2.3") for i in range(2)] + [ssh(4, OK, "192.0.2.3")]
    for data in build_feeds(records, cfg, template):
        engine.consume(Feed.from_bytes(data))
    assert engine.advance(T0 + 10) == []  # 192.0.2.3 arrived when two keys were tracked
    assert engine.stats()["untracked_pattern_keys"] == 3  # each of its three would-be starts
    assert sorted(engine.pattern.states["ssh_brute_force"].keys) == ["192.0.2.1", "192.0.2.2"]
    engine.advance(T0 + 60)  # last match at T0 + 0: 60 s later it can still be extended
    assert len(engine.pattern.states["ssh_brute_force"].keys) == 2
    engine.advance(T0 + 61)
    assert engine.pattern.states["ssh_brute_force"].keys == {}


def test_matches_per_feed_are_capped() -> None:
    records = [ssh(i, FAIL, f"192.0.2.{i}") for i in range(10)]
    cfg = DetectConfig(pattern=PatternLimits(max_matches_per_feed=4))
    engine = Engine(cfg)
    for data in build_feeds(records, cfg, template, batch_lines=10):
        engine.consume(Feed.from_bytes(data))
    assert engine.stats()["dropped_matches"] == 6


def test_reconfigure_keeps_unchanged_patterns_only() -> None:
    cfg = DetectConfig()
    engine = Engine(cfg)
    for data in build_feeds(brute(0)[:3], cfg, template):
        engine.consume(Feed.from_bytes(data))
    engine.advance(T0 + 11)
    other = Pattern(name="other", steps=["x", "y"])
    engine.reconfigure(DetectConfig(keep_events=10, patterns=[other, SSH_BRUTE_FORCE]))
    for data in build_feeds([ssh(15, OK)], engine.config, template):
        engine.consume(Feed.from_bytes(data))
    assert [e.pattern for e in engine.advance(T0 + 16)] == ["ssh_brute_force"]

    engine = Engine(cfg)
    for data in build_feeds(brute(0)[:3], cfg, template):
        engine.consume(Feed.from_bytes(data))
    engine.advance(T0 + 11)
    changed = Pattern(name="ssh_brute_force", steps=["Failed password", "Accepted password"])
    engine.reconfigure(DetectConfig(patterns=[changed]))
    for data in build_feeds([ssh(15, OK)], engine.config, template):
        engine.consume(Feed.from_bytes(data))
    assert engine.advance(T0 + 16) == []  # its state was for the old steps


def test_feed_built_before_a_reconfigure_is_remapped() -> None:
    old = DetectConfig()
    feeds = build_feeds(brute(0), old, template)
    other = Pattern(name="other", steps=["Failed password"])
    engine = Engine(DetectConfig(patterns=[other, SSH_BRUTE_FORCE]))
    for data in feeds:
        engine.consume(Feed.from_bytes(data))
    events = engine.flush()
    assert [e.pattern for e in events] == ["ssh_brute_force"]  # "other" was not in the old feeds
