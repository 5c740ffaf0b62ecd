"""Suspicious IP detector: 4xx/5xx count or share over a window, at its thresholds exactly."""
from __future__ import annotations

import re

import pytest

from logtallyd.detect.config import DetectConfig, SuspiciousConfig
from logtallyd.detect.engine import Engine
from logtallyd.detect.events import Resolved, SuspiciousIp
from logtallyd.detect.feed import Feed
from logtallyd.detect.replay import build_feeds, replay
from logtallyd.records import Http, Record

T0 = 1_700_000_000
SUSPICIOUS = dict(window_s=10, min_bad=30, min_requests=20, share=0.8, resolve_ratio=0.5)


def template(message: str) -> str:
    return re.sub(r"\d+", "<n>", message)


def config(**fields: object) -> DetectConfig:
    return DetectConfig(suspicious=SuspiciousConfig(**(SUSPICIOUS | fields)), patterns=[])  # type: ignore[arg-type]


def hit(t: float, ip: str, status: int) -> Record:
    return Record(
        "access", message=f"GET /x {status}", ts=T0 + t, service="web", severity=6,
        http=Http(ip=ip, method="GET", path="/x", status=status, latency_ms=5.0),
    )


def test_scanner_by_count_fires_once_and_resolves() -> None:
    records = [hit(s + i / 10, "198.51.100.9", 404) for s in range(5) for i in range(8)]
    records += [hit(s + i / 10, "198.51.100.9", 200) for s in range(5) for i in range(8)]
    records += [hit(s, f"192.0.2.{s}", 200) for s in range(40)]
    events = replay(sorted(records, key=lambda r: r.ts), config(), template)
    # 8 bad a second: 32 >= 30 at s=3 (share 0.5, so by count); at s=13 the window [4, 13]
    # holds 8 bad < 15 among 16 requests, too few (< 20) for the share to matter
    assert events == [
        SuspiciousIp(T0 + 3.0, "suspicious", "198.51.100.9", 32, 64, 0.5, 10, "count"),
        Resolved(T0 + 13.0, "suspicious", "198.51.100.9", "suspicious_ip", 8, 40, T0 + 3.0),
    ]


@pytest.mark.parametrize(("bad", "fires"), [(16, True), (15, False)])
def test_share_sits_exactly_at_its_threshold(bad: int, fires: bool) -> None:
    records = [hit(1 + i / 100, "203.0.113.5", 500 if i < bad else 200) for i in range(20)]
    events = replay(records, config(), template)
    if fires:
        assert events[0] == SuspiciousIp(T0 + 1.0, "suspicious", "203.0.113.5", 16, 20, 0.8, 10, "share")
        assert [e.type for e in events] == ["suspicious_ip", "resolved"]
    else:
        assert events == []


def test_share_needs_min_requests() -> None:
    records = [hit(1 + i / 100, "203.0.113.5", 403) for i in range(19)]
    assert replay(records, config(), template) == []


def test_resolution_needs_both_count_and_share_low() -> None:
    ip = "203.0.113.5"
    records = [hit(0 + i / 100, ip, 401) for i in range(20)]  # share 1.0: fires at 0
    # then 1 bad + 1 good a second: 10 bad < 15 but share 0.5 >= 0.4 among 20 requests keeps
    # it open; once the lines stop, s=30 sees 18 requests, too few for the share to count
    records += [hit(s + i / 10, ip, 401 if i < 1 else 200) for s in range(1, 30) for i in range(2)]
    events = replay(sorted(records, key=lambda r: r.ts), config(), template)
    assert [(e.type, e.ts) for e in events] == [("suspicious_ip", T0 + 0.0), ("resolved", T0 + 30.0)]


def test_many_normal_clients_give_nothing() -> None:
    records = [hit(s + i / 50, f"10.0.{i}.{s % 7}", 404 if i == 0 else 200) for s in range(120) for i in range(50)]
    assert replay(records, config(), template) == []


def test_ips_beyond_the_limit_are_counted() -> None:
    engine = Engine(config(max_ips=3))
    records = [hit(1, f"192.0.2.{i}", 200) for i in range(5)]
    for data in build_feeds(records, engine.config, template):
        engine.consume(Feed.from_bytes(data))
    engine.advance(T0 + 2)
    assert sorted(engine.suspicious.state.ips) == ["192.0.2.0", "192.0.2.1", "192.0.2.2"]
    assert engine.stats()["untracked_ip_requests"] == 2
    engine.advance(T0 + 11)  # second 10: the window [1, 10] still holds them
    assert len(engine.suspicious.state.ips) == 3
    engine.advance(T0 + 12)  # out of the window: forgotten
    assert engine.suspicious.state.ips == {}
