"""RFC 5424 parser: the §6.5 examples, structured data, nil values, BOM, and malformed lines."""
from __future__ import annotations

import datetime as dt

import pytest

from logtallyd.parsing import parse_line
from logtallyd.records import Record, Rejected

REF = 1764000000.0
BOM = "\ufeff"


def utc(*args: int, micro: int = 0, offset_minutes: int = 0) -> float:
    tz = dt.timezone(dt.timedelta(minutes=offset_minutes))
    return dt.datetime(*args, microsecond=micro, tzinfo=tz).timestamp()


def test_rfc_example_1_bom_and_nil_procid() -> None:
    line = f"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - {BOM}'su root' failed for lonvick on /dev/pts/8"
    assert parse_line(line, REF) == Record(
        format="rfc5424", message="'su root' failed for lonvick on /dev/pts/8",
        ts=utc(2003, 10, 11, 22, 14, 15, micro=3000), host="mymachine.example.com", service="su",
        level="CRIT", severity=2, facility=4, msgid="ID47",
    )


def test_rfc_example_2_microseconds_and_offset() -> None:
    rec = parse_line("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.", REF)
    assert rec == Record(
        format="rfc5424", message="%% It's time to make the do-nuts.",
        ts=utc(2003, 8, 24, 5, 14, 15, micro=3, offset_minutes=-420), host="192.0.2.1",
        service="myproc", level="NOTICE", severity=5, facility=20, procid="8710",
    )


def test_rfc_example_3_structured_data_and_message() -> None:
    line = ('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
            f'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] {BOM}An application event log entry...')
    rec = parse_line(line, REF)
    assert rec.format == "rfc5424"
    assert rec.structured_data == {"exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}}
    assert rec.message == "An application event log entry..."
    assert (rec.service, rec.procid, rec.msgid) == ("evntslog", None, "ID47")


def test_rfc_example_4_two_elements_no_message() -> None:
    line = ('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
            '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]')
    rec = parse_line(line, REF)
    assert rec.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert rec.message == ""


def test_all_nil() -> None:
    assert parse_line("<0>1 - - - - - -", REF) == Record(
        format="rfc5424", level="EMERG", severity=0, facility=0)


def test_escapes_in_param_values() -> None:
    rec = parse_line(r'<14>1 - h a - - [x q="a\"b" r="c\]d" s="e\\f" t="g\nh" u=""] m', REF)
    assert rec.structured_data == {"x": {"q": 'a"b', "r": "c]d", "s": "e\\f", "t": "g\\nh", "u": ""}}


def test_empty_element_and_message_with_newline() -> None:
    rec = parse_line("<14>1 - h a - - [sdid] first\nsecond", REF)
    assert rec.structured_data == {"sdid": {}}
    assert rec.message == "first\nsecond"


def test_field_length_limits_exact() -> None:
    ok = f"<14>1 - {'h' * 255} {'a' * 48} {'p' * 128} {'m' * 32} - x"
    rec = parse_line(ok, REF)
    assert rec.format == "rfc5424" and rec.host == "h" * 255 and rec.msgid == "m" * 32
    for field, limit in ((0, 255), (1, 48), (2, 128), (3, 32)):
        parts = ["h", "a", "p", "m"]
        parts[field] = "z" * (limit + 1)
        rec = parse_line(f"<14>1 - {' '.join(parts)} - x", REF)
        assert rec.format != "rfc5424", field


@pytest.mark.parametrize("line", [
    "<1>1",                                          # nothing after the version
    "<1>1 2003-11-02T23:12:46.012345",               # header ends early
    "<1>0 - - - - - -",                              # version 0
    "<1>1000 - - - - - -",                           # version > 999
    "<29>1 2006-01-02t15:04:05Z - - - - -",          # lower-case t
    "<29>1 2006-01-02T15:04:05z - - - - -",          # lower-case z
    "<1>1 2018-02-29T00:00:00Z - - - - -",           # not a leap year
    "<1>1 2003-09-31T22:14:15Z - - - - -",           # September has 30 days
    "<1>1 2003-09-29T22:09:01.1234567Z - - - - -",   # more than microseconds
    "<1>1 2003-08-24T05:14:15-24:00 - - - - -",      # offset hour 24
    "<1>1 2003-09-29T22:60:01Z - - - - -",           # minute 60
    "<1>1 -  - - - - -",                             # two spaces
    "<1>1 - - - - - X",                              # SD neither - nor [
    "<1>1 - - - - - []",                             # empty SD-ID
    '<1>1 - - - - - [id a="]"]',                     # unescaped ]
    '<1>1 - - - - - [id a="\\"]',                    # value never closed
    "<1>1 - - - - - [id1][id1]",                     # duplicate SD-ID (§6.3.2)
    "<1>1 - - - - - -\tmsg",                         # not SP after SD
    "<1>1 - ho\nst - - - -",                         # control char in HOSTNAME
])
def test_malformed_is_not_labelled_rfc5424(line: str) -> None:
    rec = parse_line(line, REF)
    assert not (isinstance(rec, Record) and rec.format == "rfc5424")


def test_malformed_falls_back_to_rfc3164_keeping_pri() -> None:
    rec = parse_line("<11>1 - - - - - X broken", REF)
    assert rec == Record(format="rfc3164", message="1 - - - - - X broken", level="ERROR",
                         severity=3, facility=1)


@pytest.mark.parametrize("line", ["<192>1 - - - - - -", "<002>1 - - - - - -", "<>1 - - - - - -", "<1000>x"])
def test_bad_pri(line: str) -> None:
    assert parse_line(line, REF) == Rejected("bad_pri")


def test_leading_bom_and_trailing_crlf_on_the_frame() -> None:
    rec = parse_line(f"{BOM}<14>1 - h a - - - hello\r", REF)
    assert (rec.format, rec.message) == ("rfc5424", "hello")


def test_second_60_is_not_rfc5424_even_after_a_lenient_reading_of_it() -> None:
    # App lines accept a leap second; the ISO memo they fill must not let RFC 5424 take one.
    app = parse_line("2025-01-30T12:00:60 INFO [svc] leap", REF)
    assert isinstance(app, Record) and app.format == "app"
    rec = parse_line("<13>1 2025-01-30T12:00:60Z host app - - - leap", REF)
    assert isinstance(rec, Record) and rec.format == "rfc3164"
    ok = parse_line("<13>1 2025-01-30T12:00:59.5Z host app - - - fine", REF)
    assert ok.format == "rfc5424" and ok.ts == utc(2025, 1, 30, 12, 0, 59, micro=500000)


@pytest.mark.parametrize(
    ("sd", "expected"),
    [
        ('[a b="1"]', {"a": {"b": "1"}}),
        ('[a b="x= y" c=""]', {"a": {"b": "x= y", "c": ""}}),
        ('[a b="1" b="2"]', {"a": {"b": "2"}}),
        ('[a b="q\\"x\\]" c="\\\\"][d]', {"a": {"b": 'q"x]', "c": "\\"}, "d": {}}),
    ],
)
def test_structured_data_params(sd: str, expected: dict) -> None:
    rec = parse_line(f"<13>1 2025-01-30T12:00:00Z host app - - {sd} msg", REF)
    assert isinstance(rec, Record) and rec.format == "rfc5424"
    assert rec.structured_data == expected and rec.message == "msg"
