"""`Stats(windows=False)` fed day-grain partials (`analyze` without `--html`) answers "all" as the
windowed `Stats` fed per-second partials of the same batches: totals, tallies, sketches, late,
future, first/last timestamps, unique visitors across midnight."""
from __future__ import annotations

import bisect
import random

import msgspec
import pytest

from logtallyd.records import SEVERITY_OF, Http, Record
from logtallyd.stats.aggregate import Partial, by_second
from logtallyd.stats.windows import PERCENTILES, TOP_FIELDS, Stats, StatsConfig, quantile_rank_error

NOW = 1_700_000_000.0
DAY = 86400


def rec(rng: random.Random, ts: float | None, ips: int) -> Record:
    level = rng.choice(["INFO", "INFO", "WARNING", "ERROR"])
    status = rng.choice([200, 200, 301, 404, 500])
    return Record(
        format="access", message=f"GET /p{rng.randrange(30)} {status}", ts=ts, level=level,
        severity=SEVERITY_OF[level], service=rng.choice(["web", "api"]), host=f"h{rng.randrange(3)}",
        http=Http(method=rng.choice(["GET", "POST", "BREW"]), path=f"/p{rng.randrange(30)}", status=status,
                  bytes=rng.randrange(5000), ip=f"10.0.{rng.randrange(ips) // 250}.{rng.randrange(ips) % 250}",
                  user_agent=rng.choice(["curl/8", "Mozilla/5.0", None]),
                  latency_ms=rng.choice([None, rng.random() * 100])),
    )


def partial(records: list[Record], grain: int, arrival: float, rejects: int = 0) -> Partial:
    """As the worker builds one (`summarise_partial`), through the wire."""
    p = Partial(grain=grain)
    seconds = [int(arrival) if r.ts is None else int(r.ts) for r in records]
    templates = [f"boom {r.message[:5]}" if r.severity is not None and r.severity <= 3 else None for r in records]
    p.add_many(records, [len(r.message) for r in records], seconds, templates, by_second(seconds))
    for _ in range(rejects):
        p.reject("invalid_json", 7)
    p.fold()
    for bucket in p.buckets.values():
        bucket.settle()
    return Partial.from_bytes(p.to_bytes())


def answers(stats: Stats, now: float) -> dict:
    out = {"report": stats.report("all", now), "late": stats.late, "future": stats.future,
           "newest": stats.newest, "first": stats.first_second}
    for field in TOP_FIELDS:
        out[field] = stats.top(field, 50, "all", now)
    return msgspec.json.decode(msgspec.json.encode(out))


def batches(rng: random.Random, start: float, n: int, ips: int) -> list[list[Record]]:
    """Batches of ~10 lines a second across midnight, with lines far in the past (late), ahead of
    the clock (future) and without a timestamp."""
    out = []
    t = start
    for _ in range(n):
        records = []
        for _ in range(rng.randrange(1, 400)):
            t += rng.random() * 0.2
            kind = rng.random()
            if kind < 0.03:
                ts = t - rng.randrange(4000, 90000)  # older than every window: late
            elif kind < 0.05:
                ts = NOW + rng.randrange(400, 5000)  # beyond max_future_s: future
            elif kind < 0.07:
                ts = None
            else:
                ts = t
            records.append(rec(rng, ts, ips))
        out.append(records)
    return out


@pytest.mark.parametrize("seed, ips, exact_keys", [(1, 300, 4096), (2, 3000, 4096), (3, 20000, 64)])
def test_day_buckets_without_windows_answer_all_as_the_windows_do(seed: int, ips: int, exact_keys: int) -> None:
    rng = random.Random(seed)
    config = StatsConfig(exact_keys=exact_keys, second_exact_keys=min(exact_keys, 512))
    windowed, all_only = Stats(config, NOW), Stats(config, NOW, windows=False)
    # from two hours before midnight to past it, so a batch spans two UTC days
    start = NOW - NOW % DAY - 2 * 3600 + 0.5 + DAY
    for i, records in enumerate(batches(rng, start, 60, ips)):
        arrival = NOW + i
        rejects = rng.randrange(3)
        windowed.merge(partial(records, 1, arrival, rejects), NOW + i)
        all_only.merge(partial(records, DAY, arrival, rejects), NOW + i)
    assert all_only.future > 0 and all_only.late > 0
    a, b = answers(windowed, NOW + 60), answers(all_only, NOW + 60)
    # Latency quantiles come from KLL sketches, whose compactions depend on how values are
    # grouped: each answer is within the stated rank error of the true quantile, not equal.
    latencies = sorted(r.http.latency_ms for records in batches(random.Random(seed), start, 60, ips)
                       for r in records if r.http.latency_ms is not None)  # type: ignore[union-attr]
    error = quantile_rank_error(config)
    for answer in (a, b):
        figures = answer["report"]["http"].pop("latency_ms")
        assert figures["count"] == len(latencies)
        assert figures.pop("avg") == pytest.approx(sum(latencies) / len(latencies), rel=1e-12)
        for name, q in PERCENTILES:
            rank = bisect.bisect_right(latencies, figures.pop(name)) / len(latencies)
            assert q - error <= rank <= q + error + 1 / len(latencies), name
        assert figures == {"count": len(latencies), "min": latencies[0], "max": latencies[-1]}
    assert a == b
    assert not all_only.seconds and not all_only.minutes  # nothing held per second or minute


def test_unique_visitors_count_per_day_in_a_day_bucket() -> None:
    """The same visitor on two days is two visitors (GoAccess's key holds the date)."""
    rng = random.Random(4)
    midnight = NOW - NOW % DAY + DAY
    records = [msgspec.structs.replace(r, http=msgspec.structs.replace(r.http, user_agent="curl/8", status=200))
               for r in (rec(rng, midnight - 1.5, 1), rec(rng, midnight + 1.5, 1))]
    p = partial(records, DAY, NOW)
    assert sorted(p.buckets) == [midnight - DAY, midnight]
    assert {s: sp.lines for s, sp in p.spans.items()} == {int(midnight - 1.5): 1, int(midnight + 1.5): 1}
    stats = Stats(StatsConfig(), NOW, windows=False)
    stats.merge(p, midnight + 10)
    assert stats.report("all", NOW)["distinct"]["unique_visitors"]["estimate"] == 2


def test_a_per_second_partial_also_merges_without_windows() -> None:
    """A node of an older version answers `analyze --nats` with per-second buckets."""
    rng = random.Random(5)
    recs = batches(rng, NOW - 5000, 5, 200)
    config = StatsConfig()
    day, second = Stats(config, NOW, windows=False), Stats(config, NOW, windows=False)
    for records in recs:
        day.merge(partial(records, DAY, NOW), NOW)
        second.merge(partial(records, 1, NOW), NOW)
    a, b = answers(day, NOW), answers(second, NOW)
    for answer in (a, b):  # KLL: see above
        for name in ("avg", "p50", "p95", "p99"):
            answer["report"]["http"]["latency_ms"].pop(name)
    assert a == b


def test_partials_of_different_grains_do_not_mix() -> None:
    rng = random.Random(6)
    records = [rec(rng, NOW - 3, 10)]
    day, second = partial(records, DAY, NOW), partial(records, 1, NOW)
    with pytest.raises(ValueError, match="grain"):
        second.merge(day)
    with pytest.raises(ValueError, match="grain"):
        Stats(StatsConfig(), NOW).merge(day, NOW)
    merged = partial(records, DAY, NOW)
    merged.merge(day)
    assert merged.spans[int(NOW - 3)].lines == 2 and merged.parsed == 2


def test_only_all_is_answered_without_windows() -> None:
    stats = Stats(StatsConfig(), NOW, windows=False)
    stats.merge(partial([rec(random.Random(7), NOW - 1, 5)], DAY, NOW), NOW)
    assert stats.report("all", NOW)["parsed"] == 1
    with pytest.raises(ValueError, match="only 'all'"):
        stats.report("1m", NOW)
    with pytest.raises(ValueError, match="only 'all'"):
        stats.top("ip", 5, "1m", NOW)

