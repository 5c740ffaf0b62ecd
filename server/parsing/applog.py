"""Application log lines: a timestamp, a level word, an optional `[service]` and `logger:`, a
message.
"""
# Layouts recognised (the time is read as UTC unless the timestamp carries a zone):
#   `2025-01-30 12:00:00,123 ERROR [payments] card declined`     (`T` or space; `,` or `.` fraction)
#   `2025-01-30T12:00:00.123Z [WARN] db.pool: slow checkout`      (level in brackets, logger prefix)
#   `2025-01-30 12:00:00,123 INFO [main] org.apache.X: started`   (log4j `%d %p [%t] %c: %m`)
#   `2025-01-30 12:00:00,123 - INFO  [thread:Class@42] - msg`     (Zookeeper; service = Class)
#   `2025-01-30 12:00:00,123 - myapp.db - ERROR - msg`            (Python logging's cookbook format)
#   `17/06/09 20:10:40 INFO executor.Backend: msg`                (Spark, yy/mm/dd)
#   `081109 203615 148 INFO dfs.DataNode: msg`                    (HDFS, yymmdd hhmmss pid)
#   `[Sun Dec 04 04:47:44 2005] [notice] msg`, `[... 2000] [core:error] [pid 1:tid 2] msg`
#                                                                 (Apache error log)
# The level word must be a known one (see `levels`), or the line is not an app line.
# service: a dotted (or `$`-nested) logger name such as `org.apache.X` names the component and wins
# over a bracket, which in log4j layouts is the thread; otherwise the bracket; otherwise a lower
# case `name:` prefix. A logger prefix that is used is cut from the message.
from __future__ import annotations

import re

from logtallyd.records import LEVELS, Record
from logtallyd.parsing.levels import severity_of_name
from logtallyd.parsing.timestamps import (
    ISO_LENIENT, MONTHS, day_epoch_cached, iso_epoch,
)

_SPARK_TS = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ",
                       re.ASCII)
_HDFS_TS = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2}) ([0-9]{2})([0-9]{2})([0-9]{2}) ([0-9]+) ",
                      re.ASCII)
_APACHE_ERROR = re.compile(
    r"\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))? ([0-9]{4})\] "
    r"\[(?:([^\]:\s]{1,32}):)?([A-Za-z0-9]{1,16})\] ?(?:\[pid ([0-9]+)(?::tid [0-9]+)?\] ?)?",
    re.ASCII,
)
_NOT_SIMPLE = frozenset((" ", "-", ""))  # after one blank: more to skip, or the end
_LOGGER = re.compile(r"([A-Za-z_$][\w$.\-]{0,127}):(?: |\Z)", re.ASCII)
_ZK_THREAD = re.compile(r".*:([^:@]+)@[0-9]+\Z", re.DOTALL)


def parse_app(line: str) -> Record | None:
    """An application line -> Record(format="app"); None when the line is not one."""
    c = line[:1]
    if c == "[":
        return _parse_apache_error(line)
    procid = None
    m = ISO_LENIENT.match(line)
    if m is not None:
        p = m.end()
        if p < len(line) and line[p] != " ":
            return None
        ts = iso_epoch(*m.groups())
    elif (m := _SPARK_TS.match(line)) is not None:
        ts = _short_date_epoch(*m.groups())
        p = m.end()
    elif (m := _HDFS_TS.match(line)) is not None:
        ts = _short_date_epoch(*m.groups()[:6])
        procid = m.group(7)
        p = m.end()
    else:
        return None
    if ts is None:
        return None
    return _after_timestamp(line, p, ts, procid)


def _short_date_epoch(yy: str, mo: str, dd: str, hh: str, mi: str, se: str) -> float | None:
    base = day_epoch_cached(2000 + int(yy), int(mo), int(dd))
    h, m, s = int(hh), int(mi), int(se)
    if base is None or h > 23 or m > 59 or s > 60:
        return None
    return float(base + h * 3600 + m * 60 + s)


def _skip(line: str, p: int) -> int:
    """Skip blanks and one `-` separator (`... - INFO ... - msg`)."""
    if line[p:p + 1] == " " and line[p + 1:p + 2] not in _NOT_SIMPLE:
        return p + 1  # the usual single blank before a word
    n = len(line)
    while p < n and line[p] == " ":
        p += 1
    if p < n and line[p] == "-" and (p + 1 == n or line[p + 1] == " "):
        p += 1
        while p < n and line[p] == " ":
            p += 1
    return p


def _bracket_end(line: str, p: int) -> int:
    """Index of the `]` closing the `[` at p (brackets may nest: `[QuorumPeer[myid=1]/0]`)."""
    end = line.find("]", p)
    if end >= 0 and line.find("[", p + 1, end) < 0:
        return end  # no nested bracket (the usual `[main]`)
    while end >= 0 and line.count("[", p, end + 1) > line.count("]", p, end + 1):
        if end - p > 512:
            return -1
        end = line.find("]", end + 1)
    return end


def _word_end(line: str, p: int) -> int:
    sp = line.find(" ", p)
    return len(line) if sp < 0 else sp


def _after_timestamp(line: str, p: int, ts: float, procid: str | None) -> Record | None:
    service: str | None = None
    p = _skip(line, p)
    if line.startswith("[", p):
        end = _bracket_end(line, p)
        if end < 0:
            return None
        inner = line[p + 1:end]
        severity = severity_of_name(inner)
        p = end + 1
        if severity is None:  # `[service] LEVEL msg`
            service = _service_of_bracket(inner)
            p = _skip(line, p)
            e = _word_end(line, p)
            severity = severity_of_name(line[p:e].rstrip(":"))
            if severity is None:
                return None
            p = e
    else:
        e = _word_end(line, p)
        severity = severity_of_name(line[p:e].rstrip(":"))
        if severity is None:
            if not line.startswith(" - ", e):  # `name - LEVEL - msg`
                return None
            e2 = _word_end(line, e + 3)
            severity = severity_of_name(line[e + 3:e2])
            if severity is None:
                return None
            service = line[p:e]
            e = e2
        p = e
    p = _skip(line, p)
    if service is None and line.startswith("[", p):
        end = _bracket_end(line, p)
        if end > 0:
            service = _service_of_bracket(line[p + 1:end])
            p = _skip(line, end + 1)
    # A `logger:` prefix ends its first word with ':' (checked before trying the regex).
    sp = line.find(" ", p)
    m = _LOGGER.match(line, p) if (line[sp - 1] == ":" if sp > p else line.endswith(":")) else None
    if m is not None:
        name = m.group(1)
        if "." in name or "$" in name:
            service = name
            p = m.end()
        elif service is None and name.islower():
            service = name
            p = m.end()
    return Record(
        format="app",
        message=line[p:],
        ts=ts,
        service=service or None,
        level=LEVELS[severity],
        severity=severity,
        procid=procid,
    )


def _service_of_bracket(inner: str) -> str:
    # log4j `[%t:%C{1}@%L]` (Zookeeper): the class, not the thread, names the component.
    if inner[-1:].isdigit() and "@" in inner and ":" in inner:
        m = _ZK_THREAD.match(inner)
        if m is not None:
            return m.group(1)
    return inner


def _parse_apache_error(line: str) -> Record | None:
    m = _APACHE_ERROR.match(line)
    if m is None:
        return None
    mon, dd, hh, mi, se, frac, yyyy, module, level, pid = m.groups()
    severity = severity_of_name(level)
    base = day_epoch_cached(int(yyyy), MONTHS[mon], int(dd))
    h, mnt, s = int(hh), int(mi), int(se)
    if severity is None or base is None or h > 23 or mnt > 59 or s > 60:
        return None
    ts = base + h * 3600 + mnt * 60 + s + (int(frac) / 10 ** len(frac) if frac else 0.0)
    return Record(
        format="app",
        message=line[m.end():],
        ts=float(ts),
        service=module,
        level=LEVELS[severity],
        severity=severity,
        procid=pid,
    )
