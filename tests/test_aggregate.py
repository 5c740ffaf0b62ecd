"""Partial aggregates (server.stats.aggregate): exact counts per event second, sketches, merge laws."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.stats.aggregate import MAX_VALUE_LEN, Bucket, Partial, by_second
from server.stats import sketches
from server.records import LEVELS, SEVERITY_OF, Http, Record


def rec(level: str = "INFO", ts: float | None = 1000.0, **http: object) -> Record:
    return Record(
        format="access" if http else "app",
        message=f"msg {level}",
        ts=ts,
        host="web1",
        service="api",
        level=level,
        severity=SEVERITY_OF[level],
        http=Http(**http) if http else None,  # type: ignore[arg-type]
    )


def roundtrip(p: Partial) -> Partial:
    return Partial.from_bytes(p.to_bytes())


def test_counts_per_second_and_accounting() -> None:
    p = Partial()
    p.add(rec("INFO", ip="1.1.1.1", method="GET", path="/a", status=200, bytes=100,
              user_agent="ua1", latency_ms=10.0), 50, 1000, None)
    p.add(rec("ERROR", ip="2.2.2.2", method="post", path="/b", status=503, bytes=7,
              user_agent="ua2", latency_ms=30.0), 60, 1000, "fail <*>")
    p.add(rec("WARNING", ts=1001.5), 70, 1001, None)
    p.reject("empty", 1)
    p.note("invalid_utf8")
    q = roundtrip(p)
    assert (q.received, q.parsed, q.bytes) == (4, 3, 181)
    assert q.received == q.parsed + sum(q.rejected.values())
    assert q.rejected == {"empty": 1} and q.notes == {"invalid_utf8": 1}
    assert q.by_format == {"access": 2, "app": 1}
    assert sorted(q.buckets) == [1000, 1001]
    b = q.buckets[1000]
    assert (b.lines, b.bytes, b.errors, b.requests, b.bytes_sent) == (2, 110, 1, 2, 107)
    assert b.by_level == {"INFO": 1, "ERROR": 1}
    assert b.by_method == {"GET": 1, "POST": 1}  # normalised to upper case
    assert b.by_status == {200: 1, 503: 1}
    assert (b.lat_n, b.lat_min, b.lat_max, b.lat_sum) == (2, 10.0, 30.0, 40.0)
    assert b.topk("ip").get_estimate("1.1.1.1") == 1
    assert b.topk("suspicious_ip").get_estimate("2.2.2.2") == 1
    assert b.topk("suspicious_ip").get_estimate("1.1.1.1") == 0  # a 200 is not suspicious
    assert b.topk("error").get_estimate("fail <*>") == 1
    assert b.examples == {"fail <*>": "msg ERROR"}
    assert q.buckets[1001].by_level == {"WARNING": 1}
    assert q.buckets[1001].first_ts == 1001.5 == q.buckets[1001].last_ts


def test_unbounded_domains_are_bounded() -> None:
    p = Partial()
    p.add(rec(ip="1.1.1.1", method="FROB", status=999, path="/" + "x" * 1000), 1, 5, None)
    p.add(rec(level="INFO"), 1, 5, None)
    b = roundtrip(p).buckets[5]
    assert b.by_method == {"OTHER": 1}
    assert b.by_status == {0: 1}  # not a valid HTTP status
    [(path, est, _, _)] = sketches.topk_items(b.topk("path"))
    assert len(path) == MAX_VALUE_LEN and est == 1


def test_distinct_values_do_not_grow_the_encoding() -> None:
    p = Partial()
    for i in range(50_000):
        p.add(rec(ip=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", status=404), 100, 7, None)
    size = len(p.to_bytes())
    # Two frequent-items sketches (ip, suspicious_ip) of 2**9 slots each: a few tens of KB,
    # not 50,000 addresses (~750 KB).
    assert size < 40_000


def _random_records(seed: int, n: int) -> list[tuple[Record, int, int, str | None]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        level = rnd.choice(LEVELS)
        second = 1000 + rnd.randrange(5)
        http = rnd.random() < 0.6
        r = Record(
            format=rnd.choice(["json", "access"]), message="m", ts=second + 0.25,
            level=level, severity=SEVERITY_OF[level], service=rnd.choice(["a", "b", "c"]),
            http=Http(ip=f"10.0.0.{rnd.randrange(20)}", method=rnd.choice(["GET", "PUT"]),
                      status=rnd.choice([200, 404, 500]), latency_ms=float(rnd.randrange(100)))
            if http else None,
        )
        out.append((r, rnd.randrange(1, 300), second, "t <*>" if SEVERITY_OF[level] <= 3 else None))
    return out


def _summary(p: Partial) -> dict:
    p.fold()
    out: dict = {"acc": (p.received, p.parsed, p.bytes, p.rejected, p.by_format)}
    for s, b in sorted(p.buckets.items()):
        out[s] = (
            b.lines, b.bytes, b.by_level, b.errors, b.requests, b.by_method, b.by_status,
            b.lat_n, b.lat_min, b.lat_max, round(b.lat_sum, 6),
            {name: sorted(sketches.topk_items(b.topk(name))) for name in b.sk},
            # below k=200 values a KLL sketch keeps them all: quantiles are exact and comparable
            b.quantiles().get_quantile(0.5) if b.lat_n else None,
        )
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 150), max_size=4))
def test_merge_is_associative_and_commutative(seed: int, cuts: list[int]) -> None:
    rows = _random_records(seed, 150)
    whole = Partial()
    for r in rows:
        whole.add(*r)
    bounds = sorted({0, 150, *cuts})
    parts = []
    for a, b in zip(bounds, bounds[1:]):
        part = Partial()
        for r in rows[a:b]:
            part.add(*r)
        parts.append(roundtrip(part))
    random.Random(seed).shuffle(parts)
    merged = Partial()
    for part in parts:
        merged.merge(part)
    assert _summary(roundtrip(merged)) == _summary(roundtrip(whole))


def test_bucket_merge_leaves_the_source_serialized() -> None:
    p = Partial()
    p.add(rec(ip="1.1.1.1", latency_ms=1.0), 1, 9, None)
    src = roundtrip(p).buckets[9]
    assert isinstance(src.sk["ip"], bytes)
    dst = Bucket()
    dst.merge(src)
    dst.merge(src)
    assert isinstance(src.sk["ip"], bytes) and isinstance(src.latency, bytes)
    assert dst.topk("ip").get_estimate("1.1.1.1") == 2 and dst.lat_n == 2


def _random_batch(rng: random.Random, n: int) -> tuple[list[Record], list[int], list[int], list[str | None]]:
    """A batch as a worker sees it: records, sizes, event seconds (interleaved), error templates."""
    records, sizes, seconds, templates = [], [], [], []
    for i in range(n):
        level = rng.choice([*LEVELS, "OTHER_LEVEL", None])
        severity = SEVERITY_OF.get(level) if level is not None else rng.choice([None, 3])
        ts = rng.choice([None, 1000.0 + rng.random() * 3, 1002.0, 999.5])
        http = None
        if rng.random() < 0.5:
            http = Http(
                ip=rng.choice([None, "1.1.1.1", "2.2.2.2", f"10.0.0.{i % 7}"]),
                method=rng.choice([None, "GET", "post", "BREW"]),
                path=rng.choice([None, "/a", "/b", "/" + "x" * (MAX_VALUE_LEN + i % 3)]),
                status=rng.choice([None, 200, 404, 503, 999]),
                bytes=rng.choice([None, 0, 10, 123]),
                user_agent=rng.choice([None, "ua1", "ua2"]),
                latency_ms=rng.choice([None, 1.5, 30.0, 0.0]),
            )
        record = Record(
            format=rng.choice(["access", "app", "json", "raw"]),
            message=rng.choice(["disk 1 full", "disk 2 full", "b", "a" * (MAX_VALUE_LEN + 5)]),
            ts=ts,
            host=rng.choice([None, "web1", "web2", ""]),
            service=rng.choice([None, "api", "db", ""]),
            level=level,
            severity=severity,
            http=http,
        )
        records.append(record)
        sizes.append(rng.randrange(1, 500))
        seconds.append(int(ts) if ts is not None else 1001)
        error = severity is not None and severity <= 3
        templates.append(rng.choice(["disk <*> full", "t2"]) if error else None)
    return records, sizes, seconds, templates


@pytest.mark.parametrize("seed", range(8))
def test_add_many_is_add_per_line(seed: int) -> None:
    rng = random.Random(seed)
    records, sizes, seconds, templates = _random_batch(rng, rng.randrange(0, 400))
    one = Partial()
    for args in zip(records, sizes, seconds, templates):
        one.add(*args)
    many = Partial()
    cut = rng.randrange(0, len(records) + 1)  # two calls: counts add up across calls too
    many.add_many(records[:cut], sizes[:cut], seconds[:cut], templates[:cut])
    many.add_many(records[cut:], sizes[cut:], seconds[cut:], templates[cut:])
    assert many.to_bytes() == one.to_bytes()  # same counts, sketches, examples, key order


def test_by_second_groups_in_order_of_first_occurrence() -> None:
    assert by_second([]) == []
    assert by_second([5, 5, 5]) == [(5, None)]
    assert by_second([7, 5, 7, 6, 5]) == [(7, [0, 2]), (5, [1, 4]), (6, [3])]
    many = [*range(20, 10, -1), 15]  # more distinct seconds than the per-second scans take
    assert by_second(many) == [(s, [i, 10] if s == 15 else [i]) for i, s in enumerate(many[:10])]
