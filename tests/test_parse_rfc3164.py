"""RFC 3164 / BSD syslog: with and without HOST, TAG, PID, PRI; ISO timestamps; year inference."""
from __future__ import annotations

import datetime as dt

import pytest

from logtallyd.parsing import parse_line
from logtallyd.records import Record


def utc(*args: int, micro: int = 0, offset_minutes: int = 0) -> float:
    tz = dt.timezone(dt.timedelta(minutes=offset_minutes))
    return dt.datetime(*args, microsecond=micro, tzinfo=tz).timestamp()


NOV_2025 = utc(2025, 11, 24, 12, 0, 0)


def test_full_line_with_pid() -> None:
    rec = parse_line("<85>Jan 24 15:50:41 ip-172-31-30-110 sudo[6040]: ec2-user : TTY=pts/0", NOV_2025)
    assert rec == Record(format="rfc3164", message="ec2-user : TTY=pts/0", ts=utc(2025, 1, 24, 15, 50, 41),
                         host="ip-172-31-30-110", service="sudo", level="NOTICE", severity=5,
                         facility=10, procid="6040")


def test_space_padded_day_and_tag_without_pid() -> None:
    rec = parse_line("<34>Aug  7 06:30:00 xxx aaa: message from 1.2.3.4", NOV_2025)
    assert (rec.ts, rec.host, rec.service, rec.procid, rec.message) == (
        utc(2025, 8, 7, 6, 30), "xxx", "aaa", None, "message from 1.2.3.4")


def test_no_tag() -> None:
    rec = parse_line("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", NOV_2025)
    assert (rec.host, rec.service, rec.message) == ("10.0.0.99", None, "Use the BFG!")


def test_no_host_tag_first() -> None:
    # `logger` over a unix socket / some embedded senders: no HOSTNAME.
    rec = parse_line("<14>Nov 24 11:59:58 myapp[77]: started", NOV_2025)
    assert (rec.host, rec.service, rec.procid, rec.message) == (None, "myapp", "77", "started")


def test_iso_timestamp_rsyslog_high_precision() -> None:
    rec = parse_line("<30>2025-01-30T12:00:00.123456+01:00 web01 nginx[12]: ready", NOV_2025)
    assert rec == Record(format="rfc3164", message="ready", ts=utc(2025, 1, 30, 11, 0, 0, micro=123456),
                         host="web01", service="nginx", level="INFO", severity=6, facility=3, procid="12")


def test_file_line_without_pri() -> None:
    rec = parse_line("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; rhost=218.188.2.4", NOV_2025)
    assert rec == Record(format="rfc3164", message="authentication failure; rhost=218.188.2.4",
                         ts=utc(2025, 6, 14, 15, 16, 1), host="combo", service="sshd(pam_unix)",
                         procid="19939")


def test_file_line_without_pri_gets_keyword_level() -> None:
    rec = parse_line("Dec 10 06:55:46 LabSZ sshd[24200]: error: Received disconnect", NOV_2025)
    assert (rec.level, rec.severity) == ("ERROR", 3)


def test_pri_without_timestamp_is_all_message() -> None:
    rec = parse_line("<13>hello world", NOV_2025)
    assert rec == Record(format="rfc3164", message="hello world", level="NOTICE", severity=5, facility=1)


@pytest.mark.parametrize("line, service, procid, message", [
    # Python's SysLogHandler with a `tag: ` / `tag[pid]: ` formatter (or `ident`): no timestamp
    ("<11>myapp: payment 42 failed", "myapp", None, "payment 42 failed"),
    ("<11>myapp[4242]: payment 42 failed", "myapp", "4242", "payment 42 failed"),
    ("<11>myapp:", "myapp", None, ""),
    ("<11>myapp: boom\nTraceback (most recent call last):\nValueError: x", "myapp", None,
     "boom\nTraceback (most recent call last):\nValueError: x"),
    ("<11>Jan 32 10:00:00 h app: bad day", None, None, "Jan 32 10:00:00 h app: bad day"),  # no TAG first
    ("<11>Jan 32 app: x", None, None, "Jan 32 app: x"),
    ("<11>see http://x: y", None, None, "see http://x: y"),
    ("<11>url:http://x", None, None, "url:http://x"),  # a TAG's colon is followed by a space
])
def test_pri_without_timestamp_takes_a_leading_tag(line: str, service: str | None, procid: str | None,
                                                   message: str) -> None:
    rec = parse_line(line, NOV_2025)
    assert (rec.format, rec.ts, rec.host, rec.service, rec.procid, rec.message) == (
        "rfc3164", None, None, service, procid, message)
    assert (rec.severity, rec.facility) == (3, 1)


def test_year_dec_line_received_in_january_is_last_year() -> None:
    rec = parse_line("<13>Dec 31 23:59:59 h t: x", utc(2026, 1, 1, 0, 0, 5))
    assert rec.ts == utc(2025, 12, 31, 23, 59, 59)


def test_year_jan_line_received_on_dec_31_is_next_year() -> None:
    rec = parse_line("<13>Jan  1 00:00:01 h t: x", utc(2025, 12, 31, 23, 59, 50))
    assert rec.ts == utc(2026, 1, 1, 0, 0, 1)


def test_year_old_line_stays_in_the_past() -> None:
    # Replaying a file in November that starts in February: February of this year, not next.
    rec = parse_line("<13>Feb  5 17:32:18 h t: x", NOV_2025)
    assert rec.ts == utc(2025, 2, 5, 17, 32, 18)


def test_year_feb_29_goes_to_a_leap_year() -> None:
    rec = parse_line("<13>Feb 29 10:00:00 h t: x", utc(2026, 3, 1))
    assert rec.ts == utc(2024, 2, 29, 10)


def test_same_inputs_same_output() -> None:
    line = "<13>Mar  1 10:00:00 h t: x"
    assert parse_line(line, NOV_2025) == parse_line(line, NOV_2025)


def test_rsyslog_file_format_iso_without_pri() -> None:
    rec = parse_line("2025-01-30T12:00:00.123+01:00 myhost myapp[1]: started", NOV_2025)
    assert rec == Record(format="rfc3164", message="started", ts=utc(2025, 1, 30, 11, micro=123000),
                         host="myhost", service="myapp", procid="1")


def test_tag_with_colon_message_and_no_host() -> None:
    rec = parse_line("<13>Nov 24 11:00:00 su: 'su root' failed: bad password", NOV_2025)
    assert (rec.host, rec.service, rec.message) == (None, "su", "'su root' failed: bad password")


def test_same_stamp_read_again_for_another_arrival_year() -> None:
    # The memo of `Mmm dd hh:mm:ss` readings holds for one arrival time only: the year follows it.
    line = "<13>Dec 31 23:59:59 host app: bye"
    at_2024 = dt.datetime(2025, 1, 1, 0, 0, 5, tzinfo=dt.timezone.utc).timestamp()
    at_2025 = dt.datetime(2025, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp()
    for _ in range(2):
        assert parse_line(line, at_2024).ts == dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp()
        assert parse_line(line, at_2025).ts == at_2025
