"""systemd journal entries as `journalctl -o json` writes them: one JSON object per entry, each
value a string. The JSON parser hands a line here when it has neither `message` nor `msg` and
holds the `__REALTIME_TIMESTAMP` key.
"""
# Mapping, the fields journalctl's own `short` output reads:
#   MESSAGE -> message;  PRIORITY (0..7, syslog severity) -> severity and level;
#   SYSLOG_FACILITY (0..23) -> facility;  _HOSTNAME -> host;  SYSLOG_IDENTIFIER, else _COMM ->
#   service;  _PID, else SYSLOG_PID -> procid;  __REALTIME_TIMESTAMP (microseconds since the
#   epoch, a decimal string) -> ts.
# journalctl writes a value that is not printable UTF-8 as an array of byte values, and a field
# set more than once as an array of its values (the first is kept here). An object without both
# `__REALTIME_TIMESTAMP` and `MESSAGE` is not a journal entry: the JSON parser keeps its reading.
from __future__ import annotations

from typing import Any, Union

import msgspec

from logtallyd.records import LEVELS, Record

_Value = Union[str, int, float, list[Any], None]
KEY = '"__REALTIME_TIMESTAMP"'  # what the JSON parser looks for before calling `parse_journal`


class JournalEntry(msgspec.Struct):
    """The journal fields logtally maps (see the module comment); the others are skipped."""

    realtime: _Value = msgspec.field(default=None, name="__REALTIME_TIMESTAMP")
    message: _Value = msgspec.field(default=None, name="MESSAGE")
    priority: _Value = msgspec.field(default=None, name="PRIORITY")
    facility: _Value = msgspec.field(default=None, name="SYSLOG_FACILITY")
    hostname: _Value = msgspec.field(default=None, name="_HOSTNAME")
    identifier: _Value = msgspec.field(default=None, name="SYSLOG_IDENTIFIER")
    comm: _Value = msgspec.field(default=None, name="_COMM")
    pid: _Value = msgspec.field(default=None, name="_PID")
    syslog_pid: _Value = msgspec.field(default=None, name="SYSLOG_PID")


_decoder = msgspec.json.Decoder(JournalEntry)


def parse_journal(line: str) -> Record | None:
    """A `journalctl -o json` line -> Record(format="json"); None when it is not a journal entry."""
    try:
        entry = _decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):  # includes ValidationError: a value of another shape
        return None
    if entry.realtime is None or entry.message is None:
        return None
    severity = _small_int(entry.priority, 7)
    identifier = _text(entry.identifier)
    pid = _text(entry.pid)
    return Record(
        format="json",
        message=_text(entry.message) or "",
        ts=_micros(entry.realtime),
        host=_text(entry.hostname),
        service=identifier if identifier is not None else _text(entry.comm),
        level=LEVELS[severity] if severity is not None else None,
        severity=severity,
        facility=_small_int(entry.facility, 23),
        procid=pid if pid is not None else _text(entry.syslog_pid),
    )


def _text(value: _Value) -> str | None:
    if type(value) is str or value is None:
        return value  # type: ignore[return-value]
    if isinstance(value, list):
        if value and all(type(b) is int and 0 <= b <= 255 for b in value):
            return bytes(value).decode("utf-8", "replace")  # a non-printable value, byte by byte
        return _text(value[0]) if value else None  # a field set several times: the first value
    return str(value)


def _small_int(value: _Value, highest: int) -> int | None:
    text = _text(value)
    if text is None or not (text.isdecimal() and text.isascii() and len(text) <= 2):
        return None
    number = int(text)
    return number if number <= highest else None


def _micros(value: _Value) -> float | None:
    text = _text(value)
    if text is None or not (text.isdecimal() and text.isascii() and len(text) <= 19):
        return None
    return int(text) / 1_000_000
