"""Distinct counts (HLL, `logtallyd.stats.sketches`): within the stated relative error at 10k, 1M
and 5M distinct values, merged per batch as the main process merges them; and GoAccess's unique
visitors (IP, day, user agent; 4xx answers left out) counted from records."""
from __future__ import annotations

import random

import pytest

from logtallyd.records import Http, Record
from logtallyd.stats import sketches
from logtallyd.stats.aggregate import Bucket, Partial
from logtallyd.stats.windows import Stats, StatsConfig, distinct_report

LG_K = StatsConfig().distinct_lg_k


def test_the_stated_error_is_hlls() -> None:
    rel_err = sketches.distinct_rel_err(LG_K)
    assert rel_err == pytest.approx(1.04 / 2 ** (LG_K / 2), rel=0.01)  # 1.6% at lg_k 12
    report = Stats(StatsConfig(), 0.0).report("all", 0.0)
    assert report["distinct_rel_err"] == round(rel_err, 4)


@pytest.mark.parametrize("n", [10_000, 1_000_000, 5_000_000])
def test_distinct_count_within_the_stated_error(n: int) -> None:
    total = Bucket()
    step = 250_000  # one worker sketch per step, as batches cross the pipe
    for start in range(0, n, step):
        data = sketches.distinct_bytes_of(map(str, range(start, min(n, start + step))), LG_K)
        total.merge(Bucket(distinct={"ip": data}, lg_k=LG_K))
    # and a second pass of the same values changes nothing: a distinct count, not a sum
    total.merge(Bucket(distinct={"ip": sketches.distinct_bytes_of(map(str, range(min(n, step))), LG_K)}))
    total.compact()  # through bytes, as a snapshot stores it
    got = distinct_report(total)["ip"]
    rel_err = sketches.distinct_rel_err(LG_K)
    assert abs(got["estimate"] - n) <= 3 * rel_err * n, got  # three standard deviations
    assert got["lower"] <= n <= got["upper"], got  # the bounds given: two standard deviations
    assert got["upper"] - got["lower"] <= 5 * rel_err * n


def record(ip: str, agent: str, ts: float, status: int) -> Record:
    return Record(format="access", message="-", ts=ts, service="web", host="h",
                  http=Http(ip=ip, user_agent=agent, status=status, path="/", method="GET"))


def test_unique_visitors_are_ip_day_and_user_agent_without_4xx() -> None:
    day1, day2 = 1_738_195_200, 1_738_281_600  # 2025-01-30 and 2025-01-31, 00:00 UTC
    rows = [
        record("10.0.0.1", "curl", day1 + 10, 200), record("10.0.0.1", "curl", day1 + 20, 200),  # one visitor
        record("10.0.0.1", "firefox", day1 + 30, 200),  # another user agent: a second
        record("10.0.0.2", "curl", day1 + 40, 304),  # another IP: a third
        record("10.0.0.3", "curl", day1 + 50, 404),  # a 4xx answer makes no visitor...
        record("10.0.0.1", "curl", day2 + 10, 500),  # ...a 5xx does; another day: a fourth
    ]
    p = Partial()
    p.add_many(rows, [10] * len(rows), [int(r.ts) for r in rows], [None] * len(rows))  # type: ignore[arg-type]
    stats = Stats(StatsConfig(), float(day2))
    stats.merge(Partial.from_bytes(p.to_bytes()), float(day2))
    distinct = stats.report("all", float(day2))["distinct"]
    assert distinct["unique_visitors"] == {"estimate": 4, "lower": 4, "upper": 4}
    assert distinct["ip"] == {"estimate": 3, "lower": 3, "upper": 3}  # the 4xx IP is still an IP
    assert distinct["user_agent"]["estimate"] == 2 and distinct["path"]["estimate"] == 1
    assert distinct["service"]["estimate"] == 1 and distinct["host"]["estimate"] == 1


@pytest.mark.parametrize("n", [100, 500, 5_000, 200_000])
def test_the_estimate_does_not_depend_on_how_batches_were_cut(n: int) -> None:
    """One answer live or batch: the daemon and `analyze` cut batches differently."""
    keys = [f"k{i}" for i in range(n)]
    answers = set()
    for step in (1, 37, 1000, n):
        for seed in (1, 2):
            shuffled = keys[:]
            random.Random(seed).shuffle(shuffled)
            total = Bucket()
            for start in range(0, n, step):
                total.merge(Bucket(distinct={"ip": sketches.distinct_bytes_of(shuffled[start:start + step], LG_K)}))
            answers.add(tuple(distinct_report(total)["ip"].values()))
    assert len(answers) == 1, answers
