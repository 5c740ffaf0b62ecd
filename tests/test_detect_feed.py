"""Detector feeds (server.detect.feed): a batch counted at once equals the same records fed one by one."""
from __future__ import annotations

import random

import pytest

from server.detect.config import DetectConfig, Pattern, PatternLimits, SSH_BRUTE_FORCE
from server.detect.feed import Feed
from server.records import LEVELS, Http, Record

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


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("max_matches", [1000, 3])
def test_add_many_is_add_per_record(seed: int, max_matches: int) -> None:
    rng = random.Random(seed)
    config = DetectConfig(patterns=[SSH_BRUTE_FORCE, REGEX], pattern=PatternLimits(max_matches_per_feed=max_matches))
    records, seconds, templates = _batch(rng, rng.randrange(0, 300))
    one = Feed(config, origin=seed)
    for args in zip(records, seconds, templates):
        one.add(*args)
    many = Feed(config, origin=seed)
    cut = rng.randrange(0, len(records) + 1)  # record indices continue across calls
    many.add_many(records[:cut], seconds[:cut], templates[:cut])
    many.add_many(records[cut:], seconds[cut:], templates[cut:])
    assert many.to_bytes() == one.to_bytes()
    if max_matches == 3 and len(records) > 50:
        assert many.data.dropped_matches > 0  # the cap applies in record order in both


def test_add_many_without_patterns() -> None:
    records, seconds, templates = _batch(random.Random(1), 50)
    one, many = Feed(DetectConfig(patterns=[])), Feed(DetectConfig(patterns=[]))
    for args in zip(records, seconds, templates):
        one.add(*args)
    many.add_many(records, seconds, templates)
    assert many.to_bytes() == one.to_bytes()
    assert not any(sec.matches for sec in many.data.seconds.values())
