"""Typed records: what a parser makes of one log line, and the one level scale everything shares.

Parsers (worker processes) produce `Record` or `Rejected`; aggregation, detectors and the
`tail` topic consume them. Nothing here does I/O.
"""
from __future__ import annotations

import msgspec

# One level scale for every format: the syslog severities (RFC 5424 §6.2.1), by index.
LEVELS: tuple[str, ...] = ("EMERG", "ALERT", "CRIT", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
SEVERITY_OF: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}
ERROR_SEVERITY = 3  # "errors" everywhere means severity <= ERROR_SEVERITY (ERROR or worse)

FORMATS: tuple[str, ...] = ("rfc5424", "rfc3164", "json", "access", "app", "raw")


class Http(msgspec.Struct, frozen=True, omit_defaults=True):
    """The HTTP part of an access-log line (or of a JSON line that carries HTTP fields)."""

    ip: str | None = None
    method: str | None = None
    path: str | None = None
    protocol: str | None = None
    status: int | None = None
    bytes: int | None = None
    referer: str | None = None
    user_agent: str | None = None
    latency_ms: float | None = None


class Record(msgspec.Struct, frozen=True, omit_defaults=True):
    """One parsed line. `ts` is event time in Unix seconds (UTC), None when the line has none."""

    format: str
    message: str = ""
    ts: float | None = None
    host: str | None = None
    service: str | None = None
    level: str | None = None  # one of LEVELS
    severity: int | None = None  # 0..7, index into LEVELS
    facility: int | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: dict[str, dict[str, str]] | None = None
    http: Http | None = None
    # The layer below, when MSG was itself JSON or an access-log line (format of that layer).
    inner_format: str | None = None


class Rejected(msgspec.Struct, frozen=True):
    """A line that could not be accepted, with a counted reason (`invalid_json`, `empty`, ...)."""

    reason: str


def is_error(record: Record) -> bool:
    """ERROR or worse."""
    return record.severity is not None and record.severity <= ERROR_SEVERITY
