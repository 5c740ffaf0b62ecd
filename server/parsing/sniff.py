"""Format detection: one look at the first character picks the parser to try, so a line costs one
parser attempt in the common case. Also applies `[parse]` options (allowed formats, force).

Trailing whitespace and NULs and leading blanks/BOM are dropped first. Then, by first character:
  `<`        syslog with PRI: RFC 5424 if `<PRI>` is followed by a version, else RFC 3164
  `{`        JSON; without `message`/`msg` but with `__REALTIME_TIMESTAMP` and `MESSAGE` keys, a
             `journalctl -o json` entry (`journald`)
  digit      app line (`2025-...`, `17/06/09`, `081109 203615`), else RFC 3164 with an ISO
             timestamp and no PRI (rsyslog file format), else access log (IPv4 client)
  letter     BSD syslog file line (`Jun 14 ...`), else access log (host-name client, vhost, IPv6)
  `:`        access log (IPv6 client `::1`)
  `[`        Apache error log (app), else mod_ssl request log (access)
  otherwise  raw
"""
from __future__ import annotations

import re

import msgspec

from logtallyd.records import FORMATS, LEVELS, Record, Rejected
from logtallyd import native
from logtallyd.parsing.jsonlog import INVALID_JSON, parse_json
from logtallyd.parsing.levels import infer_severity
from logtallyd.parsing.nested import nest
from logtallyd.parsing.options import ParseOptions
from logtallyd.parsing.rfc3164 import parse_rfc3164
from logtallyd.parsing.timestamps import MONTHS

# Compiled when built (logtallyd.native).
parse_access = native.load("logtallyd.parsing.access").parse_access
parse_app = native.load("logtallyd.parsing.applog").parse_app
parse_rfc5424 = native.load("logtallyd.parsing.rfc5424").parse_rfc5424

EMPTY = Rejected("empty")
BAD_PRI = Rejected("bad_pri")
_FORCED_FAIL = {f: Rejected(f"invalid_{f}") for f in FORMATS}
_FORCED_FAIL["json"] = INVALID_JSON
_PRI = re.compile(r"<([0-9]*)>", re.ASCII)
_DIGITS = frozenset("0123456789")
_ALL = frozenset(FORMATS)


class Plan:
    """ParseOptions digested once: sets and flags the hot path reads."""

    __slots__ = ("allowed", "force", "nested", "infer", "options")

    def __init__(self, options: ParseOptions) -> None:
        self.options = options
        self.allowed = frozenset(options.formats) | {"raw"}
        self.force = options.force
        self.nested = options.nested
        self.infer = options.infer_level_from_keywords


DEFAULT_PLAN = Plan(ParseOptions())
_plans: dict[int, Plan] = {}


def plan_for(options: ParseOptions | None) -> Plan:
    if options is None:
        return DEFAULT_PLAN
    plan = _plans.get(id(options))
    if plan is None or plan.options is not options:
        if len(_plans) > 64:
            _plans.clear()
        plan = _plans[id(options)] = Plan(options)
    return plan


def parse(line: str, ref_ts: float, plan: Plan) -> Record | Rejected:
    line = line.rstrip()
    if line[-1:] == "\x00":  # NUL-terminated senders
        line = line.rstrip("\x00 \t\r\n")
    if not line:
        return EMPTY
    c = line[0]
    if c in " \t\ufeff\x00":
        line = line.lstrip(" \t\ufeff\x00")
        if not line:
            return EMPTY
        c = line[0]
    if plan.force is not None:
        return _forced(line, ref_ts, plan)
    allowed = plan.allowed
    rec: Record | Rejected | None = None
    if c == "<":
        rec = _syslog(line, ref_ts, plan, allowed)
    elif c == "{":
        if "json" in allowed:
            return parse_json(line)
    elif c in _DIGITS:
        if line[4:5] == "-" or line[2:3] == "/" or line[6:7] == " ":  # a date first
            if "app" in allowed:
                rec = parse_app(line)
            if rec is None and line[10:11] == "T" and "rfc3164" in allowed:
                rec = _syslog_file_line(line, ref_ts, plan)  # rsyslog's file format
        if rec is None and "access" in allowed:
            rec = parse_access(line)
    elif c.isalpha():
        if line[3:4] == " " and line[:3] in MONTHS and "rfc3164" in allowed:
            rec = _syslog_file_line(line, ref_ts, plan)
        if rec is None and "access" in allowed:
            rec = parse_access(line)
    elif c == ":":
        if "access" in allowed:
            rec = parse_access(line)
    elif c == "[":
        if "app" in allowed:
            rec = parse_app(line)
        if rec is None and "access" in allowed:
            rec = parse_access(line)
    if rec is not None:
        return rec
    return _raw(line, plan)


# Every valid PRI as written ("0".."191", no leading zero) -> (facility, severity).
_VALID_PRI: dict[str, tuple[int, int]] = {str(pri): (pri >> 3, pri & 7) for pri in range(192)}


def _syslog(line: str, ref_ts: float, plan: Plan, allowed: frozenset[str]) -> Record | Rejected | None:
    close = line.find(">", 1, 5)
    pri = _VALID_PRI.get(line[1:close]) if close > 0 else None
    if pri is not None:  # the common case: one lookup instead of the checks below
        if "rfc5424" not in allowed and "rfc3164" not in allowed:
            return None
        facility, severity = pri
        p = close + 1
    else:
        if close > 0:
            digits, p = line[1:close], close + 1
            if digits and not (digits.isdecimal() and digits.isascii()):
                return None
        else:
            m = _PRI.match(line)  # `<>` or too many digits: still a (broken) PRI
            if m is None:
                return None
            digits, p = m.group(1), m.end()
        if "rfc5424" not in allowed and "rfc3164" not in allowed:
            return None
        # RFC 5424 §6.2.1 / RFC 3164 §4.1.1: 1-3 digits, no leading zero, 0..191.
        if not digits or len(digits) > 3 or (digits[0] == "0" and len(digits) > 1):
            return BAD_PRI
        value = int(digits)
        if value > 191:
            return BAD_PRI
        facility, severity = value >> 3, value & 7
    rec = None
    if "rfc5424" in allowed and line[p:p + 1] in _DIGITS:
        rec = parse_rfc5424(line, p, facility, severity)
    if rec is None:
        if "rfc3164" not in allowed:
            return None
        rec = parse_rfc3164(line, p, facility, severity, ref_ts)
    if plan.nested and rec is not None and (rec.message[:1] == "{" or " [" in rec.message):
        return nest(rec, allowed)  # the only MSGs that can hold JSON or an access line
    return rec


def _syslog_file_line(line: str, ref_ts: float, plan: Plan) -> Record | None:
    """BSD syslog as written to files (no PRI): /var/log/syslog, auth.log."""
    rec = parse_rfc3164(line, 0, None, None, ref_ts)
    if rec is None:
        return None
    if plan.nested:
        rec = nest(rec, plan.allowed)
    if rec.severity is None and plan.infer:
        rec = _with_inferred_level(rec)
    return rec


def _with_inferred_level(rec: Record) -> Record:
    severity = infer_severity(rec.message)
    if severity is None:
        return rec
    return msgspec.structs.replace(rec, level=LEVELS[severity], severity=severity)


def _raw(line: str, plan: Plan) -> Record:
    if plan.infer:
        severity = infer_severity(line)
        if severity is not None:
            return Record(format="raw", message=line, level=LEVELS[severity], severity=severity)
    return Record(format="raw", message=line)


def _forced(line: str, ref_ts: float, plan: Plan) -> Record | Rejected:
    force = plan.force
    rec: Record | Rejected | None = None
    if force == "raw":
        return _raw(line, plan)
    if force == "json":
        return parse_json(line) if line[0] == "{" else INVALID_JSON
    if force in ("rfc5424", "rfc3164"):
        only = frozenset((force,)) | (plan.allowed - {"rfc5424", "rfc3164"})
        if line[0] == "<":
            rec = _syslog(line, ref_ts, plan, only)
        elif force == "rfc3164":
            rec = _syslog_file_line(line, ref_ts, plan)
    elif force == "access":
        rec = parse_access(line)
    elif force == "app":
        rec = parse_app(line)
    return rec if rec is not None else _FORCED_FAIL[force]
