"""Syslog whose MSG is JSON or an access-log line: both layers end up in one record."""
from __future__ import annotations

import datetime as dt

from logtallyd.parsing import ParseOptions, parse_line
from logtallyd.records import Http, Record

REF = dt.datetime(2025, 11, 24, tzinfo=dt.timezone.utc).timestamp()
ACCESS = '1.2.3.4 - - [12/Jan/2025:06:29:59 +0100] "GET /foo HTTP/1.1" 503 96 "-" "curl/8" 0.012'


def test_access_in_rfc3164_takes_the_worse_level() -> None:
    # Logged at local7.info, but the request failed with 503: it counts as an error.
    rec = parse_line(f"<190>Jan 12 05:30:00 web nginx: {ACCESS}", REF)
    assert rec == Record(
        format="rfc3164", message=ACCESS,
        ts=dt.datetime(2025, 1, 12, 5, 30, tzinfo=dt.timezone.utc).timestamp(),
        host="web", service="nginx", level="ERROR", severity=3, facility=23,
        http=Http(ip="1.2.3.4", method="GET", path="/foo", protocol="HTTP/1.1", status=503, bytes=96,
                  user_agent="curl/8", latency_ms=12.0),
        inner_format="access",
    )


def test_access_in_syslog_file_line_takes_level_from_status() -> None:
    rec = parse_line(f"Jan 12 05:30:00 web nginx: {ACCESS}", REF)
    assert (rec.format, rec.inner_format, rec.level, rec.http.status) == ("rfc3164", "access", "ERROR", 503)


def test_json_in_rfc5424_fills_missing_only() -> None:
    line = '<14>1 2025-01-30T12:00:00Z h - - - - {"level":"error","service":"pay","message":"boom","status":500,"ts":1}'
    rec = parse_line(line, REF)
    assert rec == Record(
        format="rfc5424", message="boom", ts=dt.datetime(2025, 1, 30, 12, tzinfo=dt.timezone.utc).timestamp(),
        host="h", service="pay", level="ERROR", severity=3, facility=1, http=Http(status=500),
        inner_format="json",
    )


def test_inner_level_never_lowers_the_outer_one() -> None:
    line = '<11>1 2025-01-30T12:00:00Z h app - - - {"level":"debug","message":"x"}'
    rec = parse_line(line, REF)
    assert (rec.level, rec.severity) == ("ERROR", 3)


def test_json_in_pri_less_line_gives_level() -> None:
    rec = parse_line('Jan 12 05:30:00 h app: {"level":"warn","msg":"careful"}', REF)
    assert (rec.level, rec.message, rec.inner_format) == ("WARNING", "careful", "json")


def test_broken_inner_json_leaves_outer_alone() -> None:
    rec = parse_line("<14>1 - h app - - - {not json", REF)
    assert (rec.format, rec.message, rec.inner_format) == ("rfc5424", "{not json", None)


def test_nested_off() -> None:
    rec = parse_line(f"<190>Jan 12 05:30:00 web nginx: {ACCESS}", REF, ParseOptions(nested=False))
    assert (rec.http, rec.inner_format, rec.message) == (None, None, ACCESS)


def test_inner_format_must_be_allowed() -> None:
    opts = ParseOptions(formats=["rfc3164"])
    rec = parse_line(f"<190>Jan 12 05:30:00 web nginx: {ACCESS}", REF, opts)
    assert rec.inner_format is None
