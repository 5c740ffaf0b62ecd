"""JSON lines: known keys, level normalisation, epoch units, HTTP fields, unknown keys, bad JSON."""
from __future__ import annotations

import datetime as dt

import pytest

from logtallyd.parsing import parse_line
from logtallyd.records import Http, Record, Rejected

REF = 1764000000.0


def utc(*args: int, micro: int = 0) -> float:
    return dt.datetime(*args, microsecond=micro, tzinfo=dt.timezone.utc).timestamp()


def test_typical_line() -> None:
    line = '{"timestamp":"2025-01-30T12:00:00.123Z","level":"warn","service":"api","message":"slow","host":"web1","extra":{"a":[1]}}'
    assert parse_line(line, REF) == Record(format="json", message="slow", ts=utc(2025, 1, 30, 12, micro=123000),
                                           host="web1", service="api", level="WARNING", severity=4)


@pytest.mark.parametrize("level,name,severity", [
    ('"WARN"', "WARNING", 4), ('"warning"', "WARNING", 4), ('"FATAL"', "CRIT", 2), ('"critical"', "CRIT", 2),
    ('"TRACE"', "DEBUG", 7), ('"err"', "ERROR", 3), ('"Info"', "INFO", 6), ("50", "ERROR", 3),
    ("30", "INFO", 6), ("3", "ERROR", 3), ('"chatty"', None, None),
])
def test_levels(level: str, name: str | None, severity: int | None) -> None:
    rec = parse_line('{"level":%s,"msg":"m"}' % level, REF)
    assert (rec.level, rec.severity) == (name, severity)


@pytest.mark.parametrize("value,expected", [
    ("1738238400", 1738238400.0),
    ("1738238400.5", 1738238400.5),
    ("1738238400123", 1738238400.123),
    ("1738238400123456", 1738238400.123456),
    ('"2025-01-30 13:00:00,5+01:00"', utc(2025, 1, 30, 12, micro=500000)),
    ('"2025-01-30T12:00:00"', utc(2025, 1, 30, 12)),
    ('"not a time"', None),
])
def test_time_keys_and_units(value: str, expected: float | None) -> None:
    for key in ("timestamp", "ts", "time", "@timestamp"):
        rec = parse_line('{"%s":%s}' % (key, value), REF)
        assert rec.ts == pytest.approx(expected) if expected is not None else rec.ts is None


def test_key_aliases() -> None:
    rec = parse_line('{"app":"billing","msg":"hi","hostname":"h2","severity":"ERROR"}', REF)
    assert (rec.service, rec.message, rec.host, rec.level) == ("billing", "hi", "h2", "ERROR")
    rec = parse_line('{"logger":"a.b","message":"x"}', REF)
    assert rec.service == "a.b"


def test_http_fields() -> None:
    line = ('{"ts":1738238400,"client_ip":"10.0.0.1","method":"POST","url":"/api","status":"503",'
            '"bytes":12,"request_time":0.25,"user_agent":"curl/8","referer":"-","msg":"req"}')
    rec = parse_line(line, REF)
    assert rec.http == Http(ip="10.0.0.1", method="POST", path="/api", status=503, bytes=12,
                            referer="-", user_agent="curl/8", latency_ms=250.0)
    rec = parse_line('{"path":"/x","duration_ms":12.5}', REF)
    assert rec.http == Http(path="/x", latency_ms=12.5)


def test_no_message_keeps_whole_line() -> None:
    line = '{"level":"info","user":"bob","action":"login"}'
    assert parse_line(line, REF).message == line


def test_wrong_value_types_are_ignored_not_fatal() -> None:
    rec = parse_line('{"level":["x"],"message":{"text":"hi"},"service":"s"}', REF)
    assert rec == Record(format="json", message='{"text":"hi"}', service="s")


@pytest.mark.parametrize("line", ['{', '{"a":1', '{"a":1} trailing', "{'a': 1}", '{"a":tru}', '{"level":1e999}'])  # last: a known key whose number overflows a float
def test_invalid_json(line: str) -> None:
    assert parse_line(line, REF) == Rejected("invalid_json")
