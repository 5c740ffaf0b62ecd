"""Typed records: what a parser makes of one log line, and the one level scale everything shares.

Parsers (worker processes) produce `Record` or `Rejected`; aggregation, detectors and the
`tail` topic consume them; `record_view` is the JSON shape `tail` and `logtallyd parse` show.
Nothing here does I/O.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Literal, get_args

import msgspec

# One level scale for every format: the syslog severities (RFC 5424 §6.2.1), by index.
LEVELS: tuple[str, ...] = ("EMERG", "ALERT", "CRIT", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
SEVERITY_OF: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}
ERROR_SEVERITY = 3  # "errors" everywhere means severity <= ERROR_SEVERITY (ERROR or worse)

Format = Literal["rfc5424", "rfc3164", "json", "access", "app", "raw"]
FORMATS: tuple[Format, ...] = get_args(Format)

# Why a line is not counted as parsed: the stable keys of STATS `rejected` (and of METRICS,
# the rejects file and the `line_rejected` log). A parser says one of these ...
ParseRejectReason = Literal[
    "empty",  # the line is empty or only whitespace / BOM
    "bad_pri",  # `<digits>` that is not a PRI 0..191 without leading zeros (RFC 5424 §6.2.1)
    "invalid_json",  # starts with `{` but is not a JSON object
    # only with `[parse] force`: the forced format does not fit the line
    "invalid_rfc5424",
    "invalid_rfc3164",
    "invalid_access",
    "invalid_app",
]
# ... the framer one of these (a frame that never reaches a parser) ...
FrameErrorReason = Literal[
    "oversize",  # longer than `ingest.max_message_bytes`
    "truncated",  # the stream ended inside an octet-counted frame (RFC 6587 §3.4.1)
]
# ... a UDP listener one of these (a datagram past its peer's `ingest.peer_lines_per_s`) ...
ListenerRejectReason = Literal["rate_limited"]
# ... and `internal_error`: a line a parser failed on (a bug), or each line of a batch whose worker died.
RejectReason = Literal[ParseRejectReason, FrameErrorReason, ListenerRejectReason, "internal_error"]
REJECT_REASONS: tuple[RejectReason, ...] = get_args(RejectReason)


# A response size past this is no measurement: parsers read it as unknown (as `-`), so that one
# bad line cannot overflow the 64-bit sums every partial and snapshot carries (1 TB a response;
# 2**64 bytes is then more than 18 million such responses).
MAX_RESPONSE_BYTES = 999_999_999_999


# gc=False: a record holds strings, numbers, an `Http` and at most a dict of dicts of strings, so
# it can never be part of a reference cycle; untracked, the thousands a batch makes cost the
# cyclic collector nothing (msgspec docs, "Disabling Garbage Collection").
class Http(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """The HTTP part of an access-log line (or of a JSON line that carries HTTP fields).
    `status` is 100-999 and `bytes` at most `MAX_RESPONSE_BYTES` when set."""

    ip: str | None = None
    method: str | None = None
    path: str | None = None
    protocol: str | None = None
    status: int | None = None
    bytes: int | None = None
    referer: str | None = None
    user_agent: str | None = None
    latency_ms: float | None = None


class Record(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
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


class Rejected(msgspec.Struct, frozen=True, gc=False):
    """A line that could not be accepted, with a counted reason (`invalid_json`, `empty`, ...)."""

    reason: ParseRejectReason | Literal["internal_error"]  # the latter: the parser failed (a bug)


def is_error(record: Record) -> bool:
    """ERROR or worse."""
    return record.severity is not None and record.severity <= ERROR_SEVERITY


_VIEW_FIELDS = ("format", "ts", "host", "service", "level", "severity", "facility", "procid", "msgid",
                "structured_data", "message")


def iso_utc(ts: float | None) -> str | None:
    """Unix seconds -> `2025-01-30T12:00:00.123Z` (fraction only as long as needed, up to us)."""
    if ts is None:
        return None
    micros = round(ts * 1_000_000)
    seconds, frac = divmod(micros, 1_000_000)
    try:
        base = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None
    if frac == 0:
        return base + "Z"
    if frac % 1000 == 0:
        return f"{base}.{frac // 1000:03d}Z"
    return f"{base}.{frac:06d}Z"


def record_view(rec: Record, template_of: Callable[[Record], str] | None = None) -> dict[str, Any]:
    """The JSON shape of one record, as `logtallyd parse` prints it and `tail` subscribers get it."""
    view: dict[str, Any] = {name: getattr(rec, name) for name in _VIEW_FIELDS}
    view["ts"] = iso_utc(rec.ts)
    if rec.http is not None:
        view["http"] = msgspec.structs.asdict(rec.http)
    if rec.inner_format is not None:
        view["inner_format"] = rec.inner_format
    if template_of is not None:  # the template grouping of `TOP error`
        view["template"] = template_of(rec)
    return view
