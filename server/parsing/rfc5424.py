"""RFC 5424 syslog: `<PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`.

Strict on the header, as the RFC's ABNF (§6) is: one space between fields, printable US-ASCII,
the field length limits, an RFC 3339 timestamp with at most microseconds and an upper-case `T`/`Z`.
A line that breaks it returns None and the caller falls back to RFC 3164 (see `detect`).
"""
from __future__ import annotations

import re

from logtallyd.records import LEVELS, Record
from logtallyd.parsing.timestamps import iso_second_epoch, offset_seconds

# §6: VERSION = NONZERO-DIGIT 0*2DIGIT; TIMESTAMP = NILVALUE / FULL-DATE "T" FULL-TIME (§6.2.3:
# TIME-SECFRAC at most 6 digits, upper-case T and Z); HOSTNAME 1*255, APP-NAME 1*48,
# PROCID 1*128, MSGID 1*32 PRINTUSASCII (%d33-126).
_HEADER = re.compile(
    r"([1-9][0-9]{0,2}) "
    r"(?:-|([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,6}))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})) "
    r"([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) ",
    re.ASCII,
)
# §6.3: SD-NAME = 1*32 PRINTUSASCII except '=', SP, ']', '"'. PARAM-VALUE: '"', '\' and ']'
# MUST be escaped (§6.3.3); a backslash before any other character is kept as a backslash.
_NAME = r"[!#-<>-\\^-~]{1,32}"
_VALUE = r'[^"\\\]]*(?:\\[\s\S][^"\\\]]*)*'
_SD_ELEMENT = re.compile(rf'\[({_NAME})((?: {_NAME}="{_VALUE}")*)\]')
_SD_PARAM = re.compile(rf' ({_NAME})="({_VALUE})"')
_UNESCAPE = re.compile(r'\\([\\"\]])')
_BOM = "\ufeff"


def parse_rfc5424(line: str, pos: int, facility: int, severity: int) -> Record | None:
    """Parse from `pos` (just after `<PRI>`); None when the rest is not valid RFC 5424."""
    m = _HEADER.match(line, pos)
    if m is None:
        return None
    _, stamp, frac, tz, host, app, procid, msgid = m.groups()
    ts = None
    if stamp is not None:
        whole = iso_second_epoch(stamp)
        offset = 0 if tz == "Z" else offset_seconds(tz)
        if whole is None or offset is None or stamp[17] > "5":  # §6.2.3: no leap second 60
            return None  # e.g. 2018-02-29, 23:99, -24:00
        ts = whole - offset + (int(frac) / 10 ** len(frac) if frac else 0.0)
    p = m.end()
    sd: dict[str, dict[str, str]] | None = None
    n = len(line)
    c = line[p:p + 1]
    if c == "-":
        p += 1
    elif c == "[":
        sd = {}
        while p < n and line[p] == "[":
            e = _SD_ELEMENT.match(line, p)
            if e is None:
                return None
            sd_id, body = e.groups()
            if sd_id in sd:
                return None  # §6.3.2: the same SD-ID MUST NOT exist more than once
            sd[sd_id] = _params(body)
            p = e.end()
    else:
        return None
    if p == n:
        message = ""
    elif line[p] == " ":
        message = line[p + 1:]
        if message.startswith(_BOM):
            message = message[1:]  # §6.4: the BOM marks the encoding, it is not content
    else:
        return None
    return Record(
        format="rfc5424",
        message=message,
        ts=ts,
        host=None if host == "-" else host,
        service=None if app == "-" else app,
        level=LEVELS[severity],
        severity=severity,
        facility=facility,
        procid=None if procid == "-" else procid,
        msgid=None if msgid == "-" else msgid,
        structured_data=sd,
    )


def _params(body: str) -> dict[str, str]:
    """The PARAMs of one SD-ELEMENT (`body` already matched ` NAME="VALUE"...` as a whole)."""
    if not body:
        return {}
    if "\\" not in body:
        # Without a backslash no value holds a `"` (it would have to be escaped), so the quotes
        # split the body into ` NAME=` and VALUE pieces: str.split instead of a regex scan.
        # NAMEs hold no space, `=` or `"`: joined, the ` NAME=` pieces split apart on "= ".
        parts = body.split('"')
        if len(parts) == 3:
            return {parts[0][1:-1]: parts[1]}
        return dict(zip("".join(parts[0:-1:2])[1:-1].split("= "), parts[1::2]))
    return {k: _UNESCAPE.sub(r"\1", v) for k, v in _SD_PARAM.findall(body)}
