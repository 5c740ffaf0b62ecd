"""Detector feeds (logtallyd.detect.feed): the column-wise tally against `reference`, a
line-at-a-time count written here, and the same bytes however a batch is split into calls.
"""
from __future__ import annotations

import collections
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.detect.config import DetectConfig, Pattern, PatternLimits, SSH_BRUTE_FORCE
from logtallyd.detect.feed import MAX_LINE_CHARS, NO_SERVICE, Feed, ip_in
from logtallyd.detect.histogram import bucket_of
from logtallyd.records import LEVELS, Http, Record

REGEX = Pattern(name="disk", key="host", steps=["re:disk [0-9]+ full", "re:^b$"], max_gap_s=60.0)


def _batch(rng: random.Random, n: int) -> tuple[list[Record], list[int], list[str | None]]:
    records, seconds, templates = [], [], []
    messages = [
        "Failed password for root from 203.0.113.7 port 22 ssh2",
        "Accepted password for root from 203.0.113.7 port 22 ssh2",
        "Failed password for bob from 2001:db8::1 port 22 ssh2",
        "disk 3 full", "b", "nothing to see",
    ]
    for i in range(n):
        severity = rng.choice([None, *range(len(LEVELS))])
        ts = rng.choice([None, 1000.0 + rng.random() * 3, 1002.0])
        http = None
        if rng.random() < 0.4:
            http = Http(
                ip=rng.choice([None, "1.1.1.1", f"10.0.0.{i % 5}"]),
                status=rng.choice([None, 200, 404, 503]),
                latency_ms=rng.choice([None, 0.0, 1.5, 30.0, 30.0, 1e12, -1.0]),
            )
        records.append(Record(
            format="rfc3164",
            message=rng.choice(messages),
            ts=ts,
            host=rng.choice([None, "web1", "web2"]),
            service=rng.choice([None, "", "sshd", "api"]),
            severity=severity,
            http=http,
        ))
        seconds.append(int(ts) if ts is not None else 1001)
        error = severity is not None and severity <= 3
        templates.append(rng.choice([None, "disk <*> full", "t2"]) if error else None)
    return records, seconds, templates


def reference(
    records: list[Record], seconds: list[int], templates: list[str | None], config: DetectConfig, origin: int
) -> dict:
    """What a feed must hold, counted one record at a time with a Counter per second and field."""
    out: dict = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
    matches: list[tuple] = []
    dropped = 0
    for i, (r, second, template) in enumerate(zip(records, seconds, templates)):
        c, h, service = out[second], r.http or Http(), r.service or NO_SERVICE
        error = r.severity is not None and r.severity <= 3
        time = r.ts if r.ts is not None else float(second)
        c["lines"][service] += 1
        c["errors"][service] += error
        if h.latency_ms is not None:
            c["latency"][service, bucket_of(h.latency_ms)] += 1
        if h.ip is not None and h.status is not None:
            c["ip"][h.ip, "total"] += 1
            c["ip"][h.ip, "bad"] += h.status >= 400
        if error and template is not None:
            c["template"][service, template] += 1
            c["example"].setdefault((service, template), (r.message[:MAX_LINE_CHARS], (time, origin, i)))
        steps = [(p, s) for p, pattern in enumerate(config.patterns) for s, step in enumerate(pattern.steps)
                 if (re.search(step[3:], r.message) if step.startswith("re:") else step in r.message)]
        if steps and len(matches) >= config.pattern.max_matches_per_feed:
            dropped += 1
        elif steps:
            ip = (h.ip or ip_in(r.message)) if any(p.key == "ip" for p in config.patterns) else None
            matches.append((second, (time, origin, i), time, ip, r.host, r.service, r.message[:MAX_LINE_CHARS], steps))
    return {"seconds": {s: {f: +v if f != "example" else dict(v) for f, v in c.items()} for s, c in out.items()},
            "matches": matches, "dropped": dropped, "records": len(records)}


def held(feed: Feed) -> dict:
    """A feed's data in the reference's shape."""
    data = Feed.from_bytes(feed.to_bytes()).data
    seconds: dict = {}
    for second, sec in data.seconds.items():
        c: dict = collections.defaultdict(collections.Counter)
        for service, tally in sec.services.items():
            c["lines"][service] += tally.lines
            c["errors"][service] += tally.errors
            for b, n in tally.latency.items():
                c["latency"][service, b] += n
        for address, ip in sec.ips.items():
            c["ip"][address, "total"] += ip.total
            c["ip"][address, "bad"] += ip.bad
        for service, by_template in sec.templates.items():
            for template, t in by_template.items():
                c["template"][service, template] += t.count
                c["example"][service, template] = (t.example, tuple(t.order))
        seconds[second] = {f: +v if f != "example" else dict(v) for f, v in c.items()}
    matches = sorted(
        (second, tuple(m.order), m.ts, m.ip, m.host, m.service, m.message, [tuple(s) for s in m.steps])
        for second, sec in data.seconds.items() for m in sec.matches
    )
    return {"seconds": seconds, "matches": matches, "dropped": data.dropped_matches,
            "records": data.records}


def check_against_reference(
    records: list[Record], seconds: list[int], templates: list[str | None],
    config: DetectConfig, origin: int, cuts: list[int],
) -> Feed:
    """Count the batch in `add_many` calls split at `cuts`; the feed must hold the reference's."""
    feed = Feed(config, origin=origin)
    bounds = sorted({0, len(records), *(c for c in cuts if c <= len(records))})
    for a, b in zip(bounds, bounds[1:]):
        feed.add_many(records[a:b], seconds[a:b], templates[a:b])
    expected = reference(records, seconds, templates, config, origin)
    expected["matches"].sort()
    assert held(feed) == expected
    return feed


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("max_matches", [1000, 3])
def test_add_many_is_the_reference_and_adds_up_across_calls(seed: int, max_matches: int) -> None:
    rng = random.Random(seed)
    config = DetectConfig(patterns=[SSH_BRUTE_FORCE, REGEX], pattern=PatternLimits(max_matches_per_feed=max_matches))
    records, seconds, templates = _batch(rng, rng.randrange(0, 300))
    one = Feed(config, origin=seed)
    for args in zip(records, seconds, templates):  # one call per record
        one.add_many(*([x] for x in args))
    cut = rng.randrange(0, len(records) + 1)  # record indices continue across calls
    many = check_against_reference(records, seconds, templates, config, seed, [cut])
    assert many.to_bytes() == one.to_bytes()
    if max_matches == 3 and len(records) > 50:
        assert many.data.dropped_matches > 0  # the cap applies in record order in both


def test_add_many_without_patterns() -> None:
    records, seconds, templates = _batch(random.Random(1), 50)
    one = Feed(DetectConfig(patterns=[]))
    for args in zip(records, seconds, templates):
        one.add_many(*([x] for x in args))
    many = check_against_reference(records, seconds, templates, DetectConfig(patterns=[]), 0, [])
    assert many.to_bytes() == one.to_bytes()
    assert not any(sec.matches for sec in many.data.seconds.values())


_MESSAGES = st.sampled_from([
    "Failed password for root from 203.0.113.7 port 22 ssh2",
    "Accepted password for bob from 2001:db8::1 port 22 ssh2",
    "disk 3 full", "b", "x" * (MAX_LINE_CHARS + 1), "x" * (MAX_LINE_CHARS + 2),
])
_record = st.builds(
    Record,
    format=st.just("rfc3164"),
    message=_MESSAGES,
    ts=st.none() | st.floats(1000.0, 1003.0),
    host=st.sampled_from([None, "web1", "web2"]),
    service=st.sampled_from([None, "", "sshd", "api"]),
    severity=st.none() | st.integers(0, 7),
    http=st.none() | st.builds(
        Http,
        ip=st.sampled_from([None, "", "1.1.1.1", "10.0.0.2"]),
        status=st.sampled_from([None, 200, 399, 400, 503]),
        latency_ms=st.none() | st.floats(-1.0, 1e12),
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(_record, st.sampled_from([None, "disk <*> full", "t2"])), max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    max_matches=st.integers(1, 20),
    origin=st.integers(0, 5),
)
def test_any_records_in_any_calls_count_as_the_reference(
    rows: list[tuple[Record, str | None]], cuts: list[int], max_matches: int, origin: int
) -> None:
    config = DetectConfig(patterns=[SSH_BRUTE_FORCE, REGEX], pattern=PatternLimits(max_matches_per_feed=max_matches))
    records = [r for r, _ in rows]
    seconds = [int(r.ts) if r.ts is not None else 1001 for r in records]
    check_against_reference(records, seconds, [t for _, t in rows], config, origin, cuts)
