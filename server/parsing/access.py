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

from logtallyd.records import LEVELS, MAX_RESPONSE_BYTES, Http, Record
from logtallyd.parsing.timestamps import clf_epoch

_QUOTED_BODY = r'([^"\\]*(?:\\.[^"\\]*)*)"'
_QUOTED = '"' + _QUOTED_BODY
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
    status, severity, level = _STATUS.get(status_text) or _status(status_text)
    # Positional arguments, in the field order of `Record` and `Http`: cheaper than keywords.
    return Record(
        "access", line, ts, vhost, None, level, severity, None, None, None, None,
        Http(
            client, method, path, protocol, status,
            None if bytes_text == "-" or len(bytes_text) > _MAX_DIGITS else int(bytes_text),
            None if referer == "-" else referer,
            None if user_agent == "-" else user_agent,
            _latency(tail) if tail else None,
        ),
    )


def _fields(line: str) -> tuple[str | None, ...] | None:
    """The groups `_LINE` would match, found with string methods for the usual shape.

    The usual shape is `client ident user [time] "request" ...` with the first ` [` being the third
    space and no backslash in the quoted parts. Then `_LINE` has one way to match the head (a vhost
    would need a fourth space followed by `[`), and its tail has one way too, which the slicing
    below follows. Anything else is left to the regular expressions.
    """
    i = line.find(" [")
    if i < 0:
        return None
    p1 = line.find(" ")
    p2 = line.find(" ", p1 + 1)
    p4 = line.find(" ", i + 1)
    if (not (0 < p1 < p2 - 1 < i - 2) or line.find(" ", p2 + 1) != i or "[" in line[:p1]
            or (p4 > 0 and line[p4 + 1:p4 + 2] == "[")):
        m = _LINE.match(line)
        return None if m is None else m.groups()
    time_text = line[i + 2:i + 28]
    if line[i + 28:i + 31] != _HEAD_END or "]" in time_text:
        return None  # the head is fixed, so `_LINE` fails too
    q = line.find('"', i + 31)
    request = line[i + 31:q]
    if q < 0 or "\\" in request:
        return _rest(line, i, time_text)
    parts = line[q + 1:].split(" ", 3)
    n = len(parts)
    if n < 3 or parts[0]:
        return _rest(line, i, time_text)
    status_text, bytes_text = parts[1], parts[2]
    if not ((status_text == "-" or (len(status_text) == 3 and status_text.isdecimal() and status_text.isascii()))
            and (bytes_text == "-" or (bytes_text.isdecimal() and bytes_text.isascii()))):
        return _rest(line, i, time_text)
    client = line[:p1]
    if n == 3:
        return None, client, time_text, request, status_text, bytes_text, None, None, ""
    seg = parts[3]
    if "\\" in seg:
        return _rest(line, i, time_text)
    if seg[:1] == '"':
        a = seg.find('"', 1)
        if a > 0 and seg[a + 1:a + 3] == ' "':
            b = seg.find('"', a + 3)
            if b > 0:
                after = seg[b + 1:]
                if not after or after[0] == " ":
                    return None, client, time_text, request, status_text, bytes_text, seg[1:a], seg[a + 3:b], after
    return None, client, time_text, request, status_text, bytes_text, None, None, " " + seg


_HEAD_END = '] "'
_REST = re.compile(
    rf'"{_QUOTED_BODY} ([0-9]{{3}}|-) ([0-9]+|-)(?: {_QUOTED} {_QUOTED})?((?: .*)?)\Z', re.DOTALL,
)


def _rest(line: str, i: int, time_text: str) -> tuple[str | None, ...] | None:
    """`_LINE`'s groups from the request on, the head (client at 0, ` [` at `i`) being fixed."""
    m = _REST.match(line, i + 30)
    if m is None:
        return None
    return (None, line[:line.find(" ")], time_text) + m.groups()


def _status(status_text: str) -> tuple[int | None, int | None, str | None]:
    """Status, severity and level of a status field (3 digits or `-`), memoised in `_STATUS`."""
    if status_text == "-":
        reading: tuple[int | None, int | None, str | None] = (None, None, None)
    else:
        status = int(status_text)
        severity = _ERROR if status >= 500 else _WARNING if status >= 400 else _INFO
        reading = (status, severity, LEVELS[severity])
    _STATUS[status_text] = reading  # at most 1001 keys: `-` and 000..999
    return reading


_STATUS: dict[str, tuple[int | None, int | None, str | None]] = {}


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
