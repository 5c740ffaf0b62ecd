"""Partial aggregates (logtallyd.stats.aggregate): exact counts per event second, sketches, merge laws.

The column-wise tally is checked against `reference`, a line-at-a-time count written here.
"""
from __future__ import annotations

import collections
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.stats.aggregate import HTTP_METHODS, MAX_VALUE_LEN, Bucket, Partial, by_second
from logtallyd.stats import sketches
from logtallyd.records import LEVELS, SEVERITY_OF, Http, Record


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


Row = tuple[Record, int, int, "str | None"]  # record, size in bytes, event second, error template


def count(p: Partial, rows: list[Row]) -> None:
    """One `add_many` call for `rows`."""
    p.add_many([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])


def test_counts_per_second_and_accounting() -> None:
    p = Partial()
    count(p, [
        (rec("INFO", ip="1.1.1.1", method="GET", path="/a", status=200, bytes=100,
             user_agent="ua1", latency_ms=10.0), 50, 1000, None),
        (rec("ERROR", ip="2.2.2.2", method="post", path="/b", status=503, bytes=7,
             user_agent="ua2", latency_ms=30.0), 60, 1000, "fail <*>"),
        (rec("WARNING", ts=1001.5), 70, 1001, None),
    ])
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
    assert b.counts("ip").bounds("1.1.1.1") == (1, 1)
    assert b.counts("suspicious_ip").bounds("2.2.2.2") == (1, 1)
    assert b.counts("suspicious_ip").bounds("1.1.1.1") == (0, 0)  # a 200 is not suspicious
    assert b.counts("error").bounds("fail <*>") == (1, 1)
    assert all(b.counts(name).exact for name in b.tally)
    assert b.examples == {"fail <*>": "msg ERROR"}
    assert q.buckets[1001].by_level == {"WARNING": 1}
    assert q.buckets[1001].first_ts == 1001.5 == q.buckets[1001].last_ts


def test_unbounded_domains_are_bounded() -> None:
    p = Partial()
    count(p, [(rec(ip="1.1.1.1", method="FROB", status=999, path="/" + "x" * 1000), 1, 5, None)])
    count(p, [(rec(level="INFO"), 1, 5, None)])
    b = roundtrip(p).buckets[5]
    assert b.by_method == {"OTHER": 1}
    assert b.by_status == {0: 1}  # not a valid HTTP status
    [(path, lower, upper)] = b.counts("path").rows()
    assert len(path) == MAX_VALUE_LEN and lower == upper == 1


def test_a_batch_ships_exact_counts_that_the_main_process_sketches() -> None:
    p = Partial()
    count(p, [(rec(ip=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", status=404), 100, 7, None)
              for i in range(50_000)])
    b = roundtrip(p).buckets[7]
    # A batch's distinct values are bounded by the batch size, so its counts stay exact; the
    # main process bounds them with its budget (`[stats] exact_keys`).
    assert b.counts("ip").exact and len(b.counts("ip")) == 50_000
    assert b.counts("ip").rows(1) == [("10.0.0.0", 1, 1)]
    estimate, lower, upper = sketches.distinct_estimate(b.distinct_union("ip"))
    assert lower <= 50_000 <= upper and abs(estimate - 50_000) < 0.05 * 50_000
    # every answer was 404: no unique visitor (GoAccess leaves 4xx out)
    assert "unique_visitors" not in b.distinct


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
        b.settle()
        out[s] = (
            b.lines, b.bytes, b.by_level, b.errors, b.requests, b.by_method, b.by_status,
            b.lat_n, b.lat_min, b.lat_max, round(b.lat_sum, 6),
            {name: sorted(b.counts(name).rows()) for name in b.tally},
            {name: sketches.distinct_estimate(b.distinct_union(name)) for name in b.distinct},
            # below k=200 values a KLL sketch keeps them all: quantiles are exact and comparable
            b.quantiles().get_quantile(0.5) if b.lat_n else None,
        )
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 150), max_size=4))
def test_merge_is_associative_and_commutative(seed: int, cuts: list[int]) -> None:
    rows = _random_records(seed, 150)
    whole = Partial()
    count(whole, rows)
    bounds = sorted({0, 150, *cuts})
    parts = []
    for a, b in zip(bounds, bounds[1:]):
        part = Partial()
        count(part, rows[a:b])
        parts.append(roundtrip(part))
    random.Random(seed).shuffle(parts)
    merged = Partial()
    for part in parts:
        merged.merge(part)
    assert _summary(roundtrip(merged)) == _summary(roundtrip(whole))


def test_bucket_merge_leaves_the_source_serialized() -> None:
    p = Partial()
    count(p, [(rec(ip="1.1.1.1", latency_ms=1.0), 1, 9, None)])
    src = roundtrip(p).buckets[9]
    assert src.pending is not None and not src.distinct  # a worker's bucket: sketched by the main process
    src.settle()
    src.compact()  # as stored
    assert isinstance(src.tally["ip"], bytes) and isinstance(src.distinct["ip"], bytes)
    dst = Bucket()
    dst.merge(src)
    dst.merge(src)
    assert isinstance(src.tally["ip"], bytes) and isinstance(src.latency, bytes)
    assert isinstance(src.distinct["ip"], bytes)
    assert dst.counts("ip").bounds("1.1.1.1") == (2, 2) and dst.lat_n == 2
    assert sketches.distinct_estimate(dst.distinct_union("ip")) == (1, 1, 1)


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


def reference(rows: list[Row]) -> dict[int, dict[str, object]]:
    """The tally written out one line at a time: per event second, a Counter per field."""
    seconds: dict[int, collections.defaultdict[str, collections.Counter]] = {}
    for r, size, second, template in rows:
        c = seconds.setdefault(second, collections.defaultdict(collections.Counter))
        h = r.http or Http()
        method = None if h.method is None else h.method.upper()
        c["n"].update(lines=1, bytes=size, errors=r.severity is not None and r.severity <= 3,
                      requests=r.http is not None, bytes_sent=h.bytes or 0)
        for field, value in (
            ("format", r.format), ("level", r.level if r.level in (None, *SEVERITY_OF) else "OTHER"),
            ("method", method if method in (None, *HTTP_METHODS) else "OTHER"),
            ("status", h.status if h.status is None or 100 <= h.status <= 599 else 0),
            ("service", r.service), ("host", r.host), ("error", template), ("ip", h.ip),
            ("user_agent", h.user_agent), ("path", h.path),
            ("suspicious_ip", h.ip if (h.status or 0) >= 400 else None),
            ("ts", r.ts), ("latency", h.latency_ms),
        ):
            if value is not None:
                c[field][value[:MAX_VALUE_LEN] if isinstance(value, str) else value] += 1
        if template is not None:  # the smallest (cut) message is the example
            message = r.message[:MAX_VALUE_LEN]
            c["example"][template] = min(c["example"].get(template, message), message)
    return {second: _reduced(c) for second, c in seconds.items()}


def _reduced(c: collections.defaultdict[str, collections.Counter]) -> dict[str, object]:
    """Times and latencies as a bucket keeps them: the range, and n/sum/min/max."""
    ts, lat = list(c["ts"].elements()), list(c["latency"].elements())
    out: dict[str, object] = {field: dict(+n if field == "n" else n) for field, n in c.items()}
    out["ts"] = (min(ts), max(ts)) if ts else None
    out["latency"] = (len(lat), math.fsum(lat), min(lat), max(lat)) if lat else None
    return {field: value for field, value in out.items() if value}


def tallied(p: Partial) -> dict[int, dict[str, object]]:
    """A Partial's buckets in the reference's shape (a batch's tallies are exact)."""
    out: dict[int, dict[str, object]] = {}
    for second, b in roundtrip(p).buckets.items():
        n = dict(lines=b.lines, bytes=b.bytes, errors=b.errors, requests=b.requests,
                 bytes_sent=b.bytes_sent)
        fields: dict[str, object] = {
            "n": {k: v for k, v in n.items() if v},
            "format": b.by_format, "level": b.by_level, "method": b.by_method,
            "status": b.by_status, "example": b.examples,
            **{name: {v: lower for v, lower, _ in b.counts(name).rows()} for name in b.tally},
            "ts": (b.first_ts, b.last_ts) if b.first_ts is not None else None,
            "latency": (b.lat_n, b.lat_sum, b.lat_min, b.lat_max) if b.lat_n else None,
        }
        out[second] = {field: value for field, value in fields.items() if value}
    return out


def check_against_reference(rows: list[Row], cuts: list[int]) -> Partial:
    """Count `rows` in `add_many` calls split at `cuts`; the result must be the reference's."""
    p = Partial()
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    for a, b in zip(bounds, bounds[1:]):
        count(p, rows[a:b])
    assert (p.received, p.parsed, p.bytes) == (len(rows), len(rows), sum(r[1] for r in rows))
    assert p.by_format == collections.Counter(r[0].format for r in rows)
    assert tallied(p) == reference(rows)
    return p


def test_reference_on_hand_made_lines() -> None:
    """The reference itself, on two lines whose counts are written out."""
    rows: list[Row] = [
        (rec("ERROR", ip="2.2.2.2", method="brew", status=503, bytes=7, latency_ms=3.0), 60, 9, "t"),
        (rec("INFO", ts=None), 5, 9, None),
    ]
    assert reference(rows) == {9: {
        "n": {"lines": 2, "bytes": 65, "errors": 1, "requests": 1, "bytes_sent": 7},
        "format": {"access": 1, "app": 1}, "level": {"ERROR": 1, "INFO": 1},
        "method": {"OTHER": 1}, "status": {503: 1}, "service": {"api": 2}, "host": {"web1": 2},
        "error": {"t": 1}, "ip": {"2.2.2.2": 1}, "suspicious_ip": {"2.2.2.2": 1},
        "example": {"t": "msg ERROR"}, "ts": (1000.0, 1000.0), "latency": (1, 3.0, 3.0, 3.0),
    }}
    check_against_reference(rows, [1])


@pytest.mark.parametrize("seed", range(8))
def test_add_many_is_the_reference_and_adds_up_across_calls(seed: int) -> None:
    rng = random.Random(seed)
    records, sizes, seconds, templates = _random_batch(rng, rng.randrange(0, 400))
    rows = list(zip(records, sizes, seconds, templates))
    one = Partial()
    for row in rows:  # one call per line
        count(one, [row])
    many = check_against_reference(rows, [rng.randrange(0, len(rows) + 1)])
    assert many.to_bytes() == one.to_bytes()  # same counts, sketches, examples, key order
    check_against_reference(_random_records(seed, 150), [])


_texts = st.sampled_from
_http = st.builds(
    Http,
    ip=_texts([None, "1.1.1.1", "2.2.2.2", "::1", ""]),
    method=_texts([None, "GET", "post", "BREW", ""]),
    path=_texts([None, "/a", "/" + "x" * (MAX_VALUE_LEN + 1), "/" + "x" * (MAX_VALUE_LEN + 2)]),
    status=_texts([None, 42, 99, 100, 200, 399, 400, 503, 599, 600]),  # both edges of each rule
    bytes=_texts([None, 0, 10, 123]),
    user_agent=_texts([None, "ua1", "ua2"]),
    latency_ms=st.none() | st.floats(0.0, 1e6),
)
_record = st.builds(
    Record,
    format=_texts(["access", "app", "json"]),
    message=_texts(["disk 1 full", "b", "a" * (MAX_VALUE_LEN + 6), "a" * (MAX_VALUE_LEN + 5)]),
    ts=st.none() | st.floats(999.0, 1003.0),
    host=_texts([None, "web1", ""]),
    service=_texts([None, "api", "db"]),
    level=_texts([None, "INFO", "ERROR", "OTHER_LEVEL"]),
    severity=st.none() | st.integers(0, 7),
    http=st.none() | _http,
)
_row = st.builds(
    lambda r, size, template: (r, size, int(r.ts) if r.ts is not None else 1001, template),
    _record, st.integers(1, 500), _texts([None, "disk <*> full", "t2"]),
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(_row, max_size=80), cuts=st.lists(st.integers(0, 80), max_size=4))
def test_any_records_in_any_calls_count_as_the_reference(rows: list[Row], cuts: list[int]) -> None:
    check_against_reference(rows, cuts)


def test_by_second_groups_in_order_of_first_occurrence() -> None:
    assert by_second([]) == []
    assert by_second([5, 5, 5]) == [(5, None)]
    assert by_second([7, 5, 7, 6, 5]) == [(7, [0, 2]), (5, [1, 4]), (6, [3])]
    many = [*range(20, 10, -1), 15]  # more distinct seconds than the per-second scans take
    assert by_second(many) == [(s, [i, 10] if s == 15 else [i]) for i, s in enumerate(many[:10])]
