"""Rolling windows (logtallyd.stats.windows): event-time buckets, window edges, late/future, top-N."""
from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.stats.aggregate import Partial, behind_lines
from logtallyd.records import SEVERITY_OF, Http, Record
from logtallyd.stats.windows import Stats, StatsConfig, quantile_rank_error

NOW = 1_700_000_000.0


def rec(ts: float | None, level: str = "INFO", **http: object) -> Record:
    return Record(format="json", message=f"boom {int(ts or 0)}", ts=ts, level=level,
                  severity=SEVERITY_OF[level], service="svc", host="h1",
                  http=Http(**http) if http else None)  # type: ignore[arg-type]


def batch(records: list[Record], rejects: int = 0, horizon: int = 900) -> Partial:
    """The records as a worker counts them, in this order; `horizon`: the largest window."""
    p = Partial()
    seconds = [int(r.ts) if r.ts is not None else int(NOW) for r in records]
    p.add_many(
        records,
        [10] * len(records),
        seconds,
        ["boom <*>" if r.severity is not None and r.severity <= 3 else None for r in records],
        behind=behind_lines(seconds, horizon, int(NOW) + 300),
    )
    for _ in range(rejects):
        p.reject("invalid_json", 3)
    return Partial.from_bytes(p.to_bytes())


def stats(**cfg: object) -> Stats:
    return Stats(StatsConfig(**cfg), NOW)  # type: ignore[arg-type]


def test_window_holds_exactly_its_seconds() -> None:
    s = stats()
    newest = int(NOW)
    # one line per second over the last 20 minutes, newest at `newest`
    s.merge(batch([rec(newest - age + 0.5) for age in range(899, -1, -1)]), NOW)
    for name, width in (("1m", 60), ("5m", 300), ("15m", 900)):
        r = s.report(name, NOW)
        assert r["parsed"] == width, name
        assert r["first_ts"] == newest - width + 1 + 0.5
        assert r["last_ts"] == newest + 0.5
        assert r["lines_per_s"] == 1.0
        assert r["window_s"] == width
    assert s.report("all", NOW)["parsed"] == 900


@settings(max_examples=30, deadline=None)
@given(ages=st.lists(st.integers(0, 1000), max_size=80), now_off=st.integers(-30, 1200))
def test_lines_per_s_is_the_reports_figure(ages: list[int], now_off: int) -> None:
    """`lines_per_s` (the status line's rate) gives what `report` gives, without the sketches."""
    s = stats()
    if ages:
        s.merge(batch([rec(int(NOW) - age + 0.5) for age in ages]), NOW)
    for name in ("1m", "5m", "15m"):
        assert s.lines_per_s(name, NOW + now_off) == s.report(name, NOW + now_off)["lines_per_s"], name


@settings(max_examples=30, deadline=None)
@given(ages=st.lists(st.integers(0, 1000), min_size=1, max_size=80), anchor_off=st.integers(0, 59))
def test_windows_equal_brute_force(ages: list[int], anchor_off: int) -> None:
    """Minute rollups plus edge seconds give the same counts as filtering every line."""
    newest = int(NOW) - anchor_off
    s = stats(windows={"1m": 60, "2m": 120, "7m": 420, "15m": 900})
    seconds = [newest - a for a in ages] + [newest]
    s.merge(batch([rec(x + 0.1, "ERROR" if x % 3 == 0 else "INFO") for x in seconds]), NOW)
    horizon = 900
    for name, width in (("1m", 60), ("2m", 120), ("7m", 420), ("15m", 900)):
        inside = [x for x in seconds if x > newest - width]
        r = s.report(name, NOW)
        assert r["parsed"] == len(inside), name
        assert r["errors"] == sum(1 for x in inside if x % 3 == 0)
    assert s.late == late_in_order(seconds, horizon)
    assert s.report("all", NOW)["parsed"] == len(seconds)


def late_in_order(seconds: list[int], horizon: int, before: int | None = None) -> int:
    """Lines at least `horizon` seconds older than a line read before them (`before`: the
    newest second of what came earlier), by brute force."""
    return sum(1 for i, x in enumerate(seconds)
               if any(y - x >= horizon for y in seconds[:i] + ([] if before is None else [before])))


def test_replay_in_any_batch_order_gives_the_same_windows() -> None:
    rnd = random.Random(7)
    lines = [rec(NOW - 600 + i * 0.5, rnd.choice(["INFO", "ERROR", "WARNING"]),
                 ip=f"10.0.0.{rnd.randrange(9)}", method="GET", status=rnd.choice([200, 404, 502]),
                 latency_ms=float(rnd.randrange(500))) for i in range(1200)]
    one = stats()
    one.merge(batch(lines), NOW)
    chunks = [lines[i:i + 100] for i in range(0, 1200, 100)]
    rnd.shuffle(chunks)
    many = stats()
    for chunk in chunks:
        many.merge(batch(chunk), NOW)
    for window in ("1m", "5m", "15m", "all"):
        a, b = one.report(window, NOW), many.report(window, NOW)
        # latency percentiles come from KLL (randomized compaction past k values): compare the rest
        la, lb = a["http"].pop("latency_ms"), b["http"].pop("latency_ms")
        assert a == b, window
        for key in ("count", "min", "max", "avg"):
            assert la[key] == pytest.approx(lb[key])
        for field in ("ip", "status", "error", "suspicious_ip"):
            assert one.top(field, 5, window, NOW) == many.top(field, 5, window, NOW)


def test_late_lines_count_in_all_but_not_in_windows() -> None:
    s = stats(windows={"1m": 60})
    s.merge(batch([rec(NOW)]), NOW)
    s.merge(batch([rec(NOW - 60), rec(NOW - 59)]), NOW)  # -60 is outside every window
    assert s.late == 1
    assert s.report("1m", NOW)["parsed"] == 2
    r = s.report("all", NOW)
    assert (r["parsed"], r["late"], r["first_ts"]) == (3, 1, NOW - 60)


def test_future_lines_do_not_move_the_windows() -> None:
    s = stats(max_future_s=300)
    s.merge(batch([rec(NOW - 10)]), NOW)
    s.merge(batch([rec(NOW + 301, "ERROR"), rec(NOW + 300)]), NOW)
    assert s.future == 1
    assert s.anchor(NOW) == int(NOW) + 300  # within tolerance: accepted
    r = s.report("all", NOW)
    assert (r["parsed"], r["errors"], r["future"]) == (3, 1, 1)
    assert r["last_ts"] == NOW + 300  # the future line's timestamp is not "last seen"
    assert s.report("15m", NOW)["errors"] == 0


def test_wall_anchor_ends_windows_at_the_clock() -> None:
    s = stats(anchor="wall")
    s.merge(batch([rec(NOW - 120), rec(NOW - 30)]), NOW)
    assert s.report("1m", NOW)["parsed"] == 1
    assert s.report("1m", NOW + 100)["parsed"] == 0
    assert s.report("5m", NOW + 100)["parsed"] == 2


def test_rejected_lines_keep_the_invariant_in_every_window() -> None:
    s = stats()
    s.merge(batch([rec(NOW - 5), rec(NOW - 4)], rejects=3), NOW)
    s.merge(batch([], rejects=2), NOW)
    for window in ("1m", "all"):
        r = s.report(window, NOW)
        assert r["received"] == r["parsed"] + sum(r["rejected"].values()) == 7
        assert r["bytes"] == 2 * 10 + 5 * 3


def test_http_figures_and_top() -> None:
    s = stats()
    lines = []
    for i in range(100):
        status = 500 if i < 10 else 404 if i < 30 else 200
        ip = "6.6.6.6" if i < 25 else f"10.0.0.{i % 5}"
        lines.append(rec(NOW - 1, "ERROR" if status == 500 else "INFO", ip=ip, method="GET",
                         path=f"/p{i % 4}", status=status, bytes=i, latency_ms=float(i + 1)))
    s.merge(batch(lines), NOW)
    h = s.report("1m", NOW)["http"]
    assert h["requests"] == 100 and h["bytes_sent"] == sum(range(100))
    assert h["by_status"] == {"200": 70, "404": 20, "500": 10}
    assert h["by_class"] == {"2xx": 70, "4xx": 20, "5xx": 10}
    assert h["rate_5xx"] == 0.1
    lat = h["latency_ms"]
    assert (lat["min"], lat["max"], lat["avg"]) == (1.0, 100.0, 50.5)
    assert (lat["p50"], lat["p95"], lat["p99"]) == (50.0, 95.0, 99.0)  # n < k: KLL is exact
    bad = s.top("suspicious_ip", 2, "1m", NOW)
    assert bad[0] == {"value": "6.6.6.6", "count": 25, "share": 1.0, "requests": 25, "of_errors": 25 / 30}
    assert bad[1]["count"] == 1 and bad[1]["requests"] == 15
    assert [r["value"] for r in s.top("ip", 3, "all", NOW)] == ["6.6.6.6", "10.0.0.0", "10.0.0.1"]
    assert s.top("status", 1, "5m", NOW) == [{"value": "200", "count": 70, "share": 0.7}]
    [err] = s.top("error", 10, "15m", NOW)
    assert (err["value"], err["count"], err["example"]) == ("boom <*>", 10, f"boom {int(NOW - 1)}")
    with pytest.raises(ValueError):
        s.top("nope", 3, "1m", NOW)
    with pytest.raises(ValueError):
        s.report("2h", NOW)


def test_snapshot_roundtrip() -> None:
    s = stats()
    s.merge(batch([rec(NOW - i, ip=f"1.1.1.{i % 3}", status=404, latency_ms=1.0) for i in range(50)], 2), NOW)
    t = Stats.from_bytes(s.to_bytes(), StatsConfig())
    for window in ("1m", "15m", "all"):
        assert t.report(window, NOW) == s.report(window, NOW)
        assert t.top("ip", 5, window, NOW) == s.top("ip", 5, window, NOW)
    t.merge(batch([rec(NOW)]), NOW)
    assert t.report("all", NOW)["parsed"] == 51


def test_buckets_stay_bounded_under_high_cardinality() -> None:
    s = stats(windows={"1m": 60})
    for sec in range(200):  # 200 seconds x 500 distinct IPs = 100,000 addresses
        s.merge(batch([rec(NOW - 200 + sec, ip=f"10.{sec}.{i >> 8}.{i & 255}") for i in range(500)]), NOW)
    assert len(s.seconds) <= 60 and len(s.minutes) <= 2
    stored = sum(len(v) for b in s.seconds.values() for v in (*b.tally.values(), *b.distinct.values())
                 if isinstance(v, bytes))
    # per second: ip and suspicious_ip exact (500 <= second_exact_keys), ~16 B an address, and
    # one HLL sketch of 500 addresses (~2 KB)
    assert stored < 60 * (2 * 500 * 16 + 2_500)
    assert all(b.counts("ip").exact for b in s.seconds.values())
    assert not s.total.counts("ip").exact and len(s.total.counts("ip")) <= 6144  # lg 13
    top = s.top("ip", 3, "1m", NOW)
    # all distinct: the sketch's answers carry bounds, and the lower bound is never above 1
    assert len(top) == 3
    assert all(r["approximate"] and r["lower"] <= 1 <= r["upper"] and "count" not in r for r in top)


def test_exact_below_the_budget_and_marked_beyond() -> None:
    cfg = msgspec.convert({"windows": {"1m": 60}, "exact_keys": 100, "second_exact_keys": 100,
                           "topk_lg_size": 6, "second_lg_size": 6}, StatsConfig)  # sketches track 48 values
    s = Stats(cfg, NOW)
    s.merge(batch([rec(NOW - 1, ip=f"10.0.0.{i}") for i in range(100)]), NOW)
    assert s.top("ip", 1, "1m", NOW)[0].keys() == {"value", "count", "share"}
    assert s.report("1m", NOW)["approximate"] == {}
    services = [msgspec.structs.replace(rec(NOW, ip="10.0.1.1"), service=f"s{i}") for i in range(101)]
    s.merge(batch(services), NOW)  # 101 > 100 IPs and services
    [top] = s.top("ip", 1, "1m", NOW)
    assert top["value"] == "10.0.1.1" and top["approximate"] and top["lower"] <= 101 <= top["upper"]
    assert top["upper"] - top["lower"] > 0
    report = s.report("all", NOW)
    assert set(report["approximate"]) == {"by_service"} and report["approximate"]["by_service"] > 0
    # lower bounds: "svc" came 100 times, each other service once
    assert all(n <= (100 if name == "svc" else 1) for name, n in report["by_service"].items())
    assert 100 - report["approximate"]["by_service"] <= report["by_service"]["svc"] <= 100


def test_config_checks() -> None:
    cfg = msgspec.convert({"windows": {"1m": 60, "1h": 3600}, "kll_k": 100}, StatsConfig)
    assert Stats(cfg, NOW).horizon == 3600
    for bad in ({"windows": {"all": 5}}, {"windows": {"x": 0}}, {"windows": {}}, {"nope": 1}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, StatsConfig)
    assert 0.013 < quantile_rank_error(StatsConfig()) < 0.014
