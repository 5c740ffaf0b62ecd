"""Access logs: common, combined, vhost, IPv6 and host-name clients, `-` request, request time."""
from __future__ import annotations

import datetime as dt

import pytest

from logtallyd.parsing import ParseOptions, parse_line
from logtallyd.records import Http, Record, Rejected

REF = 1764000000.0


def ts(*args: int, offset_minutes: int = 0) -> float:
    return dt.datetime(*args, tzinfo=dt.timezone(dt.timedelta(minutes=offset_minutes))).timestamp()


def test_combined() -> None:
    line = '192.168.33.1 - - [26/Dec/2016:16:22:13 +0000] "GET /hello?x=1 HTTP/1.1" 404 499 "http://r/" "Mozilla/5.0 (X)"'
    assert parse_line(line, REF) == Record(
        format="access", message=line, ts=ts(2016, 12, 26, 16, 22, 13), level="WARNING", severity=4,
        http=Http(ip="192.168.33.1", method="GET", path="/hello?x=1", protocol="HTTP/1.1", status=404,
                  bytes=499, referer="http://r/", user_agent="Mozilla/5.0 (X)"),
    )


def test_common_ipv6_with_offset() -> None:
    rec = parse_line('::1 - frank [26/Dec/2016:16:16:29 +0200] "GET /favicon.ico HTTP/1.1" 200 209', REF)
    assert rec.ts == ts(2016, 12, 26, 16, 16, 29, offset_minutes=120)
    assert rec.http == Http(ip="::1", method="GET", path="/favicon.ico", protocol="HTTP/1.1", status=200, bytes=209)
    assert rec.level == "INFO"


def test_full_ipv6_client() -> None:
    rec = parse_line('2001:db8::7 - - [01/Jan/2025:00:00:00 +0000] "HEAD / HTTP/2.0" 500 -', REF)
    assert (rec.http.ip, rec.http.status, rec.http.bytes, rec.level) == ("2001:db8::7", 500, None, "ERROR")


def test_dash_request_and_dash_bytes() -> None:
    rec = parse_line('::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -', REF)
    assert rec.http == Http(ip="::1", status=408)


def test_hostname_client_and_vhost_prefix() -> None:
    rec = parse_line('monitoring-server - - [29/May/2017:19:02:48 +0000] "GET /status HTTP/1.1" 200 612 "-" "UA" "-"', REF)
    assert (rec.http.ip, rec.http.referer, rec.http.user_agent) == ("monitoring-server", None, "UA")
    rec = parse_line('vhost1.domaine.fr 123.123.123.123 - - [04/Jul/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 32953 "-" "UA"', REF)
    assert (rec.host, rec.http.ip, rec.http.bytes) == ("vhost1.domaine.fr", "123.123.123.123", 32953)


@pytest.mark.parametrize("tail,latency", [
    (" 0.005", 5.0),            # nginx $request_time, seconds
    (" 1.250", 1250.0),
    (" 5123", 5.123),           # Apache %D, microseconds
    (' "10.1.1.1, 10.2.2.2" 0.020', 20.0),  # X-Forwarded-For then request time
    (" PID 18904 Time Taken 0", None),       # not a request time
    ("", None),
])
def test_request_time(tail: str, latency: float | None) -> None:
    rec = parse_line('10.0.0.1 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "UA"' + tail, REF)
    assert rec.http.latency_ms == (pytest.approx(latency) if latency is not None else None)


def test_sizes_and_times_past_twelve_digits_are_unknown() -> None:
    """Such a figure is no measurement: read as `-` rather than overflow the 64-bit sums of the
    partials and snapshots, or put an infinite latency into the quantile sketch."""
    head = '10.0.0.1 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 '
    assert parse_line(head + "999999999999", REF).http.bytes == 999_999_999_999
    assert parse_line(head + "1000000000000", REF).http.bytes is None
    assert parse_line(head + "9" * 30, REF).http.bytes is None
    assert parse_line(head + '5 "-" "UA" 999999999999', REF).http.latency_ms == 999_999_999.999
    assert parse_line(head + '5 "-" "UA" ' + "1" * 400 + ".5", REF).http.latency_ms is None
    assert parse_line(head + '5 "-" "UA" ' + "1" * 400, REF).http.latency_ms is None
    assert parse_line("[01/Jan/2025:00:00:00 +0000] 10.0.0.1 TLSv1.3 X \"GET / HTTP/1.1\" " + "9" * 20, REF).http.bytes is None


def test_common_format_with_request_time() -> None:
    rec = parse_line('10.0.0.1 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 5 0.5', REF)
    assert rec.http.latency_ms == 500.0


def test_junk_request_is_kept_without_method() -> None:
    line = '10.0.0.1 - - [01/Jan/2025:00:00:00 +0000] "\\x16\\x03\\x01\\x00\\xa5\\x01" 400 226 "-" "-"'
    rec = parse_line(line, REF)
    assert rec.format == "access"
    assert rec.http == Http(ip="10.0.0.1", status=400, bytes=226)


def test_http09_request() -> None:
    rec = parse_line('10.0.0.1 - - [01/Jan/2025:00:00:00 +0000] "GET /" 200 5', REF)
    assert (rec.http.method, rec.http.path, rec.http.protocol) == ("GET", "/", None)


def test_mod_ssl_request_log() -> None:
    rec = parse_line('[10/Aug/2018:09:45:56 +0200] 172.30.0.119 TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 "GET /x?a=1 HTTP/1.1" 1375', REF)
    assert rec.ts == ts(2018, 8, 10, 7, 45, 56)
    assert rec.http == Http(ip="172.30.0.119", method="GET", path="/x?a=1", protocol="HTTP/1.1", bytes=1375)


@pytest.mark.parametrize("line", [
    '10.0.0.1 - - [32/Dec/2016:16:22:13 +0000] "GET / HTTP/1.1" 200 5',   # no such day
    '10.0.0.1 - - [26/Foo/2016:16:22:13 +0000] "GET / HTTP/1.1" 200 5',   # no such month
    '10.0.0.1 - - [26/Dec/2016:16:22:13 +0000] "GET / HTTP/1.1" two 5',   # status not a number
    '10.0.0.1 [26/Dec/2016:16:22:13 +0000] "GET / HTTP/1.1" 200 5',       # fields missing
])
def test_not_access(line: str) -> None:
    rec = parse_line(line, REF)
    assert rec.format == "raw"
    assert parse_line(line, REF, ParseOptions(force="access")) == Rejected("invalid_access")
