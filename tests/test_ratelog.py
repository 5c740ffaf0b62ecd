"""Rate-limited logging: a flood logs a bounded number of lines and accounts for every dropped one."""
from __future__ import annotations

from structlog.testing import capture_logs

from logtallyd.ratelog import OVERFLOW_KEY, RateLimitedLog, RateLimiter


def test_window_edges_exact() -> None:
    limiter = RateLimiter(per_key_per_interval=2, interval_s=10.0)
    assert limiter.allow("oversize", 0.0) == (True, 0)
    assert limiter.allow("oversize", 1.0) == (True, 0)
    assert limiter.allow("oversize", 2.0) == (False, 1)
    assert limiter.allow("oversize", 9.999) == (False, 2)
    assert limiter.allow("empty", 9.999) == (True, 0)  # keys have separate budgets
    assert limiter.allow("oversize", 10.0) == (True, 2)  # new window: first line reports the two dropped
    assert limiter.allow("oversize", 10.5) == (True, 0)
    assert limiter.allow("oversize", 11.0) == (False, 1)


def test_expire_reports_trailing_suppression_once() -> None:
    limiter = RateLimiter(per_key_per_interval=1, interval_s=5.0)
    limiter.allow("a", 0.0)
    for t in (1.0, 2.0, 3.0):
        limiter.allow("a", t)
    limiter.allow("b", 0.0)
    assert limiter.expire(4.9) == []  # windows still open
    assert limiter.expire(5.0) == [("a", 3)]  # "b" dropped nothing: forgotten silently
    assert limiter.windows == {}
    assert limiter.expire(100.0) == []


def test_key_count_is_bounded() -> None:
    limiter = RateLimiter(per_key_per_interval=1, interval_s=60.0, max_keys=3)
    for peer in range(3):
        assert limiter.allow(f"10.0.0.{peer}", 0.0) == (True, 0)
    assert limiter.allow("10.0.0.9", 1.0) == (True, 0)  # budget of the shared overflow key
    assert limiter.allow("10.0.0.10", 1.0) == (False, 1)
    assert set(limiter.windows) == {"10.0.0.0", "10.0.0.1", "10.0.0.2", OVERFLOW_KEY}


def test_eviction_keeps_suppressed_counts() -> None:
    limiter = RateLimiter(per_key_per_interval=1, interval_s=10.0, max_keys=1)
    limiter.allow("a", 0.0)
    limiter.allow("a", 1.0)  # suppressed
    assert limiter.allow("b", 20.0) == (True, 0)  # "a" expired and evicted to make room
    assert limiter.expire(20.0) == [("a", 1)]


def test_garbage_flood_logs_a_bounded_number_of_lines() -> None:
    """100 000 rejected lines over 10 s, three reasons, 5 lines per reason per second."""
    now = [0.0]
    rlog = RateLimitedLog(RateLimiter(per_key_per_interval=5, interval_s=1.0), clock=lambda: now[0])
    reasons = ("oversize", "invalid_utf8", "empty")
    n = 100_000
    with capture_logs() as logs:
        for i in range(n):
            now[0] = i * 1e-4  # 0 .. 9.9999 s
            rlog.log("warning", "line_rejected", key=reasons[i % 3], reason=reasons[i % 3], peer="10.0.0.1:5555")
        now[0] = 11.0
        rlog.flush()
    rejected = [entry for entry in logs if entry["event"] == "line_rejected"]
    summaries = [entry for entry in logs if entry["event"] == "log_suppressed"]
    # Each reason opens a new window every second: 10 windows x 5 lines x 3 reasons.
    assert len(rejected) == 150
    assert {entry["log_level"] for entry in rejected} == {"warning"}
    assert sorted(entry["key"] for entry in summaries) == sorted(reasons)
    reported = sum(entry.get("suppressed", 0) for entry in rejected) + sum(e["suppressed"] for e in summaries)
    assert reported == n - 150 == rlog.suppressed_total
    per_reason = {r: sum(e.get("suppressed", 0) for e in logs if e.get("reason") == r or e.get("key") == r) for r in reasons}
    assert per_reason == {r: len(range(reasons.index(r), n, 3)) - 50 for r in reasons}


def test_connection_events_without_key_share_the_event_budget() -> None:
    now = [0.0]
    rlog = RateLimitedLog(RateLimiter(per_key_per_interval=2, interval_s=60.0), clock=lambda: now[0])
    with capture_logs() as logs:
        results = [rlog.log("info", "connection_opened", peer=f"10.0.0.{i}:1") for i in range(5)]
        now[0] = 60.0
        rlog.log("info", "connection_opened", peer="10.0.0.6:1")
    assert results == [True, True, False, False, False]
    assert logs[-1] == {"event": "connection_opened", "log_level": "info", "peer": "10.0.0.6:1", "suppressed": 3}
    assert len(logs) == 3
