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


# Two entries as `journalctl -o json` writes them (systemd 252): every value a string, a
# non-UTF-8 MESSAGE as an array of bytes.
JOURNAL_SSHD = (
    '{"__CURSOR":"s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8674a4e8ed8e8ab89a1ee6c;'
    'm=3a3fa3c4;t=5f0a8c0d5a1d2;x=9cda8a3f8b41f3b9","__REALTIME_TIMESTAMP":"1738238400123456",'
    '"__MONOTONIC_TIMESTAMP":"977249220","_BOOT_ID":"6c7c6013a8674a4e8ed8e8ab89a1ee6c",'
    '"_TRANSPORT":"syslog","PRIORITY":"3","SYSLOG_FACILITY":"4","SYSLOG_IDENTIFIER":"sshd",'
    '"SYSLOG_PID":"1234","_PID":"1234","_UID":"0","_GID":"0","_COMM":"sshd","_EXE":"/usr/sbin/sshd",'
    '"_CMDLINE":"sshd: root [priv]","_SYSTEMD_UNIT":"ssh.service","_HOSTNAME":"web-1",'
    '"MESSAGE":"error: maximum authentication attempts exceeded for root from 10.0.0.5 port 50022 ssh2"}'
)
JOURNAL_KERNEL = (
    '{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1738238401000000","_TRANSPORT":"kernel",'
    '"PRIORITY":"6","SYSLOG_FACILITY":"0","_HOSTNAME":"web-1","_COMM":"kworker",'
    '"MESSAGE":[117,115,98,32,255,33]}'
)


def test_journalctl_json_entry_maps_its_fields() -> None:
    assert parse_line(JOURNAL_SSHD, REF) == Record(
        format="json", ts=utc(2025, 1, 30, 12, micro=123456), host="web-1", service="sshd",
        level="ERROR", severity=3, facility=4, procid="1234",
        message="error: maximum authentication attempts exceeded for root from 10.0.0.5 port 50022 ssh2")


def test_journalctl_fallbacks_and_byte_array_message() -> None:
    rec = parse_line(JOURNAL_KERNEL, REF)
    assert (rec.service, rec.procid, rec.message, rec.level, rec.facility, rec.ts) == (
        "kworker", None, "usb \ufffd!", "INFO", 0, 1738238401.0)
    rec = parse_line('{"__REALTIME_TIMESTAMP":"1","MESSAGE":"m","SYSLOG_PID":"9","_PID":["7","8"]}', REF)
    assert rec.procid == "7"  # a field set twice: the first value


@pytest.mark.parametrize("priority, level", [('"0"', "EMERG"), ('"7"', "DEBUG"), ('"8"', None),
                                             ('"x"', None), ('"-1"', None), ("5", "NOTICE")])
def test_journalctl_priority(priority: str, level: str | None) -> None:
    rec = parse_line('{"__REALTIME_TIMESTAMP":"1738238400000000","MESSAGE":"m","PRIORITY":%s}' % priority, REF)
    assert rec.level == level


def test_a_json_line_without_journal_fields_stays_plain_json() -> None:
    # `__REALTIME_TIMESTAMP` without MESSAGE (or inside a value) is no journal entry
    rec = parse_line('{"msg":"has __REALTIME_TIMESTAMP","__REALTIME_TIMESTAMP":"5","level":"warn"}', REF)
    assert (rec.message, rec.level, rec.ts) == ("has __REALTIME_TIMESTAMP", "WARNING", None)
    rec = parse_line('{"message":"x \\"__REALTIME_TIMESTAMP\\"","MESSAGE":{"a":1}}', REF)
    assert rec.message == 'x "__REALTIME_TIMESTAMP"'
    assert parse_line('{"__REALTIME_TIMESTAMP":"1",', REF) == Rejected("invalid_json")
    # an object with its own `msg` is an application's JSON line, whatever other keys it has
    rec = parse_line('{"msg":"mine","__REALTIME_TIMESTAMP":"5","MESSAGE":"theirs","PRIORITY":"3"}', REF)
    assert (rec.message, rec.level) == ("mine", None)


@pytest.mark.parametrize(("fields", "status", "size"), [
    ('"status":200,"bytes":999999999999', 200, 999_999_999_999),
    ('"status":200,"bytes":1000000000000', 200, None),
    ('"status":200,"bytes":1e30', 200, None),
    ('"status":200,"bytes":18446744073709551615', 200, None),
    ('"status":200,"bytes":-5', 200, None),
    ('"status":99,"bytes":5', None, 5),
    ('"status":1000,"bytes":5', None, 5),
    ('"status":1e30,"bytes":5', None, 5),
])
def test_sizes_and_statuses_out_of_range_are_unknown(fields: str, status: int | None, size: int | None) -> None:
    """As in access logs: a figure past what a response can be is read as absent, so one line
    cannot overflow the 64-bit sums of the partials or the tail's encoding."""
    rec = parse_line('{"ts":"2025-02-01T10:00:01Z","msg":"x","ip":"1.2.3.4","path":"/",' + fields + "}", 0.0)
    assert (rec.http.status, rec.http.bytes) == (status, size)
