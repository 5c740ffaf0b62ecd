"""RFC 3164 / BSD syslog as real senders write it: `[<PRI>]TIMESTAMP [HOST] [TAG[PID]:] MSG`."""
# TIMESTAMP is `Mmm dd hh:mm:ss` (optionally with a fraction) or an ISO 8601 timestamp
# (rsyslog's high-precision templates). The BSD form has no year and no zone: the year is the
# latest one that does not put the line more than a week after its arrival time
# (`timestamps.bsd_epoch`: a Dec 31 line received on Jan 1 belongs to the previous year, a Jan 1
# line received on Dec 31 to the next) and the time is read as UTC. After the timestamp the
# first word is the HOST unless it already looks like a TAG (`name:` or `name[pid]:`), as in
# `logger` output sent without a hostname. A line with a PRI but no recognisable timestamp is
# still accepted, with no timestamp and no HOST (RFC 3164 §4.3.3); as rsyslog does, a leading
# `TAG:` or `TAG[PID]:` is still the TAG (Python's SysLogHandler sends `<PRI>tag: msg`), and
# otherwise all of it is MSG.
from __future__ import annotations

import re

from logtallyd.records import LEVELS, Record
from logtallyd.parsing.timestamps import ISO_LENIENT, MONTHS, bsd_epoch, iso_epoch

_BSD_TS = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}([0-9]{1,2}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?: |\Z)",
    re.ASCII,
)
# TAG: a word without spaces, brackets or colons, optional [PID], then ':' (§4.1.3 says
# alphanumeric; real tags are `sshd(pam_unix)`, `postfix/smtpd`, `systemd-logind`).
_TAG = re.compile(r"([^\s\[\]:]{1,64})(?:\[([^\]\s]{0,32})\])?:(?: |\Z)")
# The common shape in one match: `Mmm dd hh:mm:ss HOST TAG[PID]: ` (HOST without ':' so that a
# TAG is never taken for it); anything else goes the general way below.
_FULL = re.compile(
    r"((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}[0-9]{1,2} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2}) ([^\s:\[\]]+) "
    r"([^\s\[\]:]{1,64})(?:\[([^\]\s]{0,32})\])?:(?: |\Z)",
    re.ASCII,
)
# `Mmm dd hh:mm:ss` -> epoch (None: invalid), for one arrival time (the year depends on it):
# the lines of one second cost one dict lookup. Cleared when the arrival time changes (per batch).
_stamp_cache: dict[str, float | None] = {}
_stamp_ref: list[float] = [-1.0]
_MISSING = object()


def _stamp_epoch(stamp: str, ref_ts: float) -> float | None:
    if ref_ts != _stamp_ref[0]:
        _stamp_cache.clear()
        _stamp_ref[0] = ref_ts
    ts = _stamp_cache.get(stamp, _MISSING)
    if ts is not _MISSING:
        return ts  # type: ignore[return-value]
    ts = None
    m = _BSD_TS.match(stamp)
    if m is not None:
        mon, day, hh, mi, se, _ = m.groups()
        h, mnt, sec = int(hh), int(mi), int(se)
        if h <= 23 and mnt <= 59 and sec <= 60:
            ts = bsd_epoch(MONTHS[mon], int(day), h * 3600 + mnt * 60 + sec, ref_ts)
    if len(_stamp_cache) >= 4096:
        _stamp_cache.clear()
    _stamp_cache[stamp] = ts
    return ts


def parse_rfc3164(line: str, pos: int, facility: int | None, severity: int | None,
                  ref_ts: float) -> Record | None:
    """Parse from `pos`; with a PRI this always gives a record, without one None if no timestamp."""
    ts: float | None = None
    f = _FULL.match(line, pos)
    if f is not None:
        stamp, host, service, procid = f.groups()
        ts = _stamp_epoch(stamp, ref_ts)
        if ts is not None:
            return _record(ts, host, service, procid or None, line[f.end():], facility, severity)
    m = _BSD_TS.match(line, pos)
    if m is not None:
        mon, day, hh, mi, se, frac = m.groups()
        h, mnt, s = int(hh), int(mi), int(se)
        if h <= 23 and mnt <= 59 and s <= 60:
            ts = bsd_epoch(MONTHS[mon], int(day), h * 3600 + mnt * 60 + s, ref_ts)
            if ts is not None and frac:
                ts += int(frac) / 10 ** len(frac)
        if ts is None:
            return None if facility is None else _untimed(line, pos, facility, severity)
        p = m.end()
    else:
        m = ISO_LENIENT.match(line, pos)
        if m is not None and (m.end() == len(line) or line[m.end()] == " "):
            ts = iso_epoch(*m.groups())
            p = m.end() + 1
        if ts is None:
            if facility is None:
                return None
            return _untimed(line, pos, facility, severity)
    host: str | None = None
    service: str | None = None
    procid: str | None = None
    t = _TAG.match(line, p)
    if t is None:
        sp = line.find(" ", p)
        if sp < 0:
            host, p = line[p:] or None, len(line)
        else:
            host, p = line[p:sp] or None, sp + 1
            t = _TAG.match(line, p)
    if t is not None:
        service, procid = t.groups()
        procid = procid or None
        p = t.end()
    return _record(ts, host, service, procid, line[p:], facility, severity)


def _untimed(line: str, pos: int, facility: int, severity: int) -> Record:
    """§4.3.3: a PRI without a valid TIMESTAMP; a TAG may still open the rest (no HOST: there is
    no timestamp to tell a HOST from a first word)."""
    t = _TAG.match(line, pos)
    if t is None:
        return _record(None, None, None, None, line[pos:], facility, severity)
    service, procid = t.groups()
    return _record(None, None, service, procid or None, line[t.end():], facility, severity)


def _record(ts: float | None, host: str | None, service: str | None,
            procid: str | None, message: str, facility: int | None,
            severity: int | None) -> Record:
    return Record(
        format="rfc3164",
        message=message,
        ts=ts,
        host=host,
        service=service,
        level=LEVELS[severity] if severity is not None else None,
        severity=severity,
        facility=facility,
        procid=procid,
    )
