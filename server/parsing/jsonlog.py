"""JSON lines: one object per line, decoded by msgspec straight into a typed Struct."""
# Known keys (the first present wins, in this order):
#   time: `timestamp`, `ts`, `time`, `@timestamp` -- an ISO 8601 string, or an epoch number in
#         seconds (values above 1e11 are read as ms, above 1e14 as us, above 1e17 as ns);
#   level: `level`, `severity`, `log.level` -- a name (normalised by `levels`) or a number
#         (0..7 syslog severity, 10..60 pino/bunyan);
#   service: `service`, `app`, `logger`;  message: `message`, `msg`;  host: `host`, `hostname`;
#   HTTP: `ip`/`client_ip`/`remote_addr`, `method`, `path`/`url`, `protocol`, `status`, `bytes`,
#         `latency_ms`/`duration_ms` (milliseconds) or `request_time` (seconds, nginx), `user_agent`,
#         `referer`. A record gets `http` when `method`, `path`/`url` or `status` is present.
# Unknown keys are skipped by the decoder and not kept in the record; when the line has no
# `message`/`msg` the whole line is the message, so nothing the sender wrote is lost to the reader.
# A key whose value has an unexpected type (say `"level": ["x"]`) is ignored rather than failing
# the line. An object without `message`/`msg` that has the `__REALTIME_TIMESTAMP` and `MESSAGE`
# keys is a `journalctl -o json` entry, mapped by `journald` instead. A line that is not valid JSON (or nests deeper than msgspec decodes, or
# holds a number no float can hold in a known key) is `Rejected("invalid_json")`.
from __future__ import annotations

import math

from typing import Any, Union

import msgspec

from logtallyd.records import LEVELS, MAX_RESPONSE_BYTES, Http, Record, Rejected
from logtallyd.parsing.journald import KEY as _JOURNAL_KEY, parse_journal
from logtallyd.parsing.levels import severity_of_name, severity_of_number
from logtallyd.parsing.timestamps import parse_iso

_Scalar = Union[str, int, float, None]


class JsonLine(msgspec.Struct):
    """The keys of a JSON log line that logtally understands (see the module docstring)."""

    timestamp: _Scalar = None
    ts: _Scalar = None
    time: _Scalar = None
    at_timestamp: _Scalar = msgspec.field(default=None, name="@timestamp")
    level: _Scalar = None
    severity: _Scalar = None
    log_level: _Scalar = msgspec.field(default=None, name="log.level")
    service: _Scalar = None
    app: _Scalar = None
    logger: _Scalar = None
    message: _Scalar = None
    msg: _Scalar = None
    host: _Scalar = None
    hostname: _Scalar = None
    ip: _Scalar = None
    client_ip: _Scalar = None
    remote_addr: _Scalar = None
    method: _Scalar = None
    path: _Scalar = None
    url: _Scalar = None
    protocol: _Scalar = None
    status: _Scalar = None
    bytes: _Scalar = None
    latency_ms: _Scalar = None
    duration_ms: _Scalar = None
    request_time: _Scalar = None
    user_agent: _Scalar = None
    referer: _Scalar = None


_decoder = msgspec.json.Decoder(JsonLine)
_FIELDS = {f.encode_name: f.name for f in msgspec.structs.fields(JsonLine)}
INVALID_JSON = Rejected("invalid_json")


def parse_json(line: str) -> Record | Rejected:
    """A JSON object line -> Record(format="json"), or Rejected("invalid_json")."""
    try:
        obj = _decoder.decode(line)
    except msgspec.ValidationError:
        obj = _decode_loosely(line)
        if obj is None:
            return INVALID_JSON
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nesting deeper than msgspec's limit
        return INVALID_JSON
    if obj.message is None and obj.msg is None and _JOURNAL_KEY in line:
        # A journal entry writes its text as MESSAGE: ordinary lines never pay for this look.
        entry = parse_journal(line)
        if entry is not None:
            return entry
    return record_from(obj, line)


def _decode_loosely(line: str) -> JsonLine | None:
    """Slow path: some known key had a non-scalar value; drop such values and keep the rest."""
    try:
        raw = msgspec.json.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    kept: dict[str, Any] = {}
    for key, attr in _FIELDS.items():
        value = raw.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            kept[attr] = value
        elif attr in ("message", "msg") and value is not None:
            kept[attr] = msgspec.json.encode(value).decode()
    return JsonLine(**kept)


def record_from(obj: JsonLine, line: str) -> Record:
    """Build the Record of a decoded JSON line (also used for JSON nested in syslog)."""
    # The first-present-wins chains are written out (no `_first(...)` calls): this runs per line.
    ts = obj.timestamp
    if ts is None:
        ts = obj.ts if obj.ts is not None else obj.time if obj.time is not None else obj.at_timestamp
    level_value = obj.level
    if level_value is None:
        level_value = obj.severity if obj.severity is not None else obj.log_level
    severity = None
    if level_value is not None:
        if type(level_value) is str:
            severity = severity_of_name(level_value)
        elif isinstance(level_value, int) and not isinstance(level_value, bool):
            severity = severity_of_number(level_value)
    message = obj.message if obj.message is not None else obj.msg
    http = None
    method = obj.method
    path = obj.path if obj.path is not None else obj.url
    status = obj.status
    if method is not None or path is not None or status is not None:
        http = Http(
            ip=_text(_first(obj.ip, obj.client_ip, obj.remote_addr)),
            method=_text(method),
            path=_text(path),
            protocol=_text(obj.protocol),
            status=_status(_integer(status)),
            bytes=_size(_integer(obj.bytes)),
            referer=_text(obj.referer),
            user_agent=_text(obj.user_agent),
            latency_ms=_latency(obj),
        )
    host = obj.host if obj.host is not None else obj.hostname
    service = obj.service
    if service is None:
        service = obj.app if obj.app is not None else obj.logger
    return Record(
        format="json",
        message=line if message is None else message if type(message) is str else str(message),
        ts=_epoch(ts),
        host=host if host is None or type(host) is str else str(host),
        service=service if service is None or type(service) is str else str(service),
        level=LEVELS[severity] if severity is not None else None,
        severity=severity,
        http=http,
    )


def _first(*values: _Scalar) -> _Scalar:
    for v in values:
        if v is not None:
            return v
    return None


def _text(value: _Scalar) -> Any:
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _integer(value: _Scalar) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.isdecimal() and len(value) < 19:
        return int(value)
    return None


def _status(value: int | None) -> int | None:
    return value if value is not None and 100 <= value <= 999 else None


def _size(value: int | None) -> int | None:
    """A byte count; past `MAX_RESPONSE_BYTES` (or negative) unknown, as in access logs."""
    return value if value is not None and 0 <= value <= MAX_RESPONSE_BYTES else None


def _number(value: _Scalar) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (ValueError, OverflowError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _latency(obj: JsonLine) -> float | None:
    ms = _number(_first(obj.latency_ms, obj.duration_ms))
    if ms is not None:
        return ms
    seconds = _number(obj.request_time)
    if seconds is None:
        return None
    ms = seconds * 1000.0
    return ms if math.isfinite(ms) else None  # 1e308 s is a finite number, not a finite latency


def _epoch(value: _Scalar) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if type(value) is str:
        ts = parse_iso(value)
        if ts is None:
            number = _number(value) if value[:1].isdigit() else None
            return _scale_epoch(number) if number is not None else None
        return ts
    number = _number(value)
    return _scale_epoch(number) if number is not None else None


def _scale_epoch(x: float) -> float | None:
    # Seconds until year 5138; beyond that the unit must be ms, us or ns.
    if x != x or x in (float("inf"), float("-inf")):
        return None
    if x >= 1e17:
        return x / 1e9
    if x >= 1e14:
        return x / 1e6
    if x >= 1e11:
        return x / 1e3
    return x
