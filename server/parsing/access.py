"""HTTP access logs: Apache/nginx common and combined formats, and Apache's mod_ssl request log."""
# `[vhost ]client ident user [dd/Mon/yyyy:hh:mm:ss +zzzz] "request" status bytes["referer" "ua"][ extra]`
# - client is kept as logged in `Http.ip` (IPv4, IPv6 or, with HostnameLookups, a host name);
#   a leading vhost (Apache `%v`/`vhost_combined`) becomes `Record.host`.
# - request `"-"` (a connection closed before a request, e.g. status 408) or junk that is not
#   `METHOD path[ HTTP/x]` leaves method/path/protocol empty; status and bytes `-` are None.
# - extra: unquoted words after the user agent (quoted ones such as `"$http_x_forwarded_for"` are
#   skipped). When all of them are numbers or `-`, the first number is the request time: with a
#   `.` it is seconds (nginx `$request_time`, `0.005`), without one microseconds (Apache `%D`,
#   `5123`); both become `latency_ms`. Anything else there (`PID 1 Time Taken 0`) is left alone.
# - level follows the status: 5xx is ERROR, 4xx WARNING, the rest INFO, so server errors count as
#   errors everywhere.
# mod_ssl `ssl_request_log`: `[time] client TLS-version cipher "request" bytes` (no status).
# The message is the whole line.
from __future__ import annotations

import re
from typing import Any

from logtallyd.records import LEVELS, MAX_RESPONSE_BYTES, Http, Record
from logtallyd.parsing.timestamps import clf_epoch

_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
# One match per line (no nested quantifiers over the same characters, so no runaway
# backtracking): [vhost ]client ident user [time] "request" status bytes[ "referer" "ua"]tail
_LINE = re.compile(
    rf'(?:([^ \[]+) )?([^ \[]+) [^ ]+ [^ ]+ \[([^\]]{{26}})\] {_QUOTED} ([0-9]{{3}}|-) ([0-9]+|-)'
    rf'(?: {_QUOTED} {_QUOTED})?((?: .*)?)\Z',
    re.DOTALL,
)
_EXTRA = re.compile(r'"[^"]*"|\S+')
_SSL = re.compile(r'\[([^\]]{26})\] (\S+) (\S+) (\S+) "(.*)" ([0-9]+|-)\Z', re.DOTALL)
_METHODS = frozenset("GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND".split())
_INFO, _WARNING, _ERROR = 6, 4, 3


def parse_access(line: str) -> Record | None:
    """An access-log line -> Record(format="access"); None when the line is not one."""
    if line.startswith("["):
        return _parse_ssl(line)
    fields = _fields(line)
    if fields is None:
        return None
    vhost, client, time_text, request, status_text, bytes_text, referer, user_agent, tail = fields
    ts = clf_epoch(time_text)
    if ts is None:
        return None
    method, path, protocol = _request(request)
    status, severity, level = _STATUS[status_text]
    # Positional arguments, in the field order of `Record` and `Http`: cheaper than keywords.
    return Record(
        "access", line, ts, vhost, None, level, severity, None, None, None, None,
        Http(
            client, method, path, protocol, status,
            _size(bytes_text),
            None if referer == "-" else referer,
            None if user_agent == "-" else user_agent,
            _latency(tail) if tail else None,
        ),
    )


def _fields(line: str) -> tuple[Any, ...] | None:
    """The groups `_LINE` would match, found with string methods for the usual shape.

    The usual shape: no backslash, `client ident user [time] "request" status bytes` and then
    nothing, an unquoted tail, or `"referer" "ua"` and an unquoted tail. There `_LINE` has one way
    to match (a vhost would need ` [` inside the time), which the slicing below follows; it costs
    a few C-level calls where the regex steps through every character. Anything else is left to
    `_LINE`.

    Typed `Any` for mypyc (logtallyd.native): the fields that may be None are tested where used.
    """
    if " [" not in line:  # no time field: most lines that are not access lines stop here
        return None
    if "\\" not in line:
        parts = line.split('"')
        n = len(parts)
        if n == 7 or n == 3:
            head = parts[0].split(" ", 3)
            if len(head) == 4:
                client, ident, user, stamp = head
                time_text = stamp[1:27]
                if (client and ident and user and len(stamp) == 29 and stamp[0] == "[" and stamp[27:] == "] "
                        and "[" not in client and "]" not in time_text and " [" not in time_text):
                    if n == 3:  # common: no quote after the request
                        sb = parts[2].split(" ", 3)
                        if len(sb) >= 3 and not sb[0] and sb[1] in _STATUS and _is_size(sb[2]):
                            return (None, client, time_text, parts[1], sb[1], sb[2], None, None,
                                    " " + sb[3] if len(sb) == 4 else "")
                    else:
                        sb = parts[2].split(" ")
                        after = parts[6]
                        if (len(sb) == 4 and not sb[0] and not sb[3] and sb[1] in _STATUS and _is_size(sb[2])
                                and parts[4] == " " and (not after or after[0] == " ")):
                            return None, client, time_text, parts[1], sb[1], sb[2], parts[3], parts[5], after
    m = _LINE.match(line)
    return None if m is None else m.groups()


def _is_size(text: str) -> bool:
    """`([0-9]+|-)`: `isdecimal` alone would take other scripts' digits."""
    return text == "-" or (text.isdecimal() and text.isascii())


def _status(status_text: str) -> tuple[int | None, int | None, str | None]:
    if status_text == "-":
        return None, None, None
    status = int(status_text)
    severity = _ERROR if status >= 500 else _WARNING if status >= 400 else _INFO
    return status, severity, LEVELS[severity]


# Every status field `_LINE` accepts (`-`, 000..999) -> (status, severity, level).
_STATUS: dict[str, tuple[int | None, int | None, str | None]] = {
    text: _status(text) for text in ["-"] + [f"{n:03d}" for n in range(1000)]
}


# Request lines and trailing request times repeat (the same URLs, millisecond latencies): their
# readings are memoised by the exact text, in bounded dicts cleared when full.
_CACHE_LIMIT = 4096
_MISSING = object()
_request_cache: dict[str, tuple[str | None, str | None, str | None]] = {}
_latency_cache: dict[str, float | None] = {}


def _request(request: str) -> tuple[str | None, str | None, str | None]:
    parts = _request_cache.get(request)
    if parts is None:
        parts = _read_request(request)
        if len(request) <= 256:
            if len(_request_cache) >= _CACHE_LIMIT:
                _request_cache.clear()
            _request_cache[request] = parts
    return parts


def _latency(tail: str) -> float | None:
    ms = _latency_cache.get(tail, _MISSING)
    if ms is _MISSING:
        ms = _read_latency(tail)
        if len(tail) <= 32:
            if len(_latency_cache) >= _CACHE_LIMIT:
                _latency_cache.clear()
            _latency_cache[tail] = ms
    return ms  # type: ignore[return-value]


def _read_request(request: str) -> tuple[str | None, str | None, str | None]:
    """`GET /x HTTP/1.1` -> parts; `-`, junk or a method that is not a word -> Nones."""
    parts = request.split(" ")
    method = parts[0]
    if not (2 <= len(parts) <= 3 and (method in _METHODS or (
            0 < len(method) <= 20 and method.isalpha() and method.isupper() and method.isascii()))):
        return None, None, None
    protocol = parts[2] if len(parts) == 3 else None
    if protocol is not None and not protocol.startswith("HTTP/"):
        return method, None, None
    return method, parts[1] or None, protocol


def _read_latency(tail: str) -> float | None:
    word = tail[1:]
    if " " in word or '"' in word:
        word = ""
        for m in _EXTRA.finditer(tail):
            w = m.group()
            if w[0] == '"' or w == "-":
                continue
            if not _is_number(w):
                return None
            word = word or w
    elif not _is_number(word):
        return None
    if not word:
        return None
    if len(word) > _MAX_DIGITS:
        return None
    if "." in word:
        return float(word) * 1000.0  # nginx $request_time: seconds, ms resolution
    return int(word) / 1000.0  # Apache %D: microseconds


# A duration this long is no measurement (11.5 days in microseconds): read as unknown, not as an
# infinite latency in the quantile sketches. A size this long is past `MAX_RESPONSE_BYTES`.
_MAX_DIGITS = len(str(MAX_RESPONSE_BYTES))


def _size(text: str) -> int | None:
    return None if text == "-" or len(text) > _MAX_DIGITS else int(text)


def _is_number(word: str) -> bool:
    return word.replace(".", "", 1).isdecimal() and word.isascii()


def _parse_ssl(line: str) -> Record | None:
    m = _SSL.match(line)
    if m is None:
        return None
    time_text, client, _tls_version, _cipher, request, bytes_text = m.groups()
    ts = clf_epoch(time_text)
    if ts is None:
        return None
    method, path, protocol = _request(request)
    return Record(
        format="access",
        message=line,
        ts=ts,
        http=Http(
            ip=client,
            method=method,
            path=path,
            protocol=protocol,
            bytes=_size(bytes_text),
        ),
    )
