"""Level names of every format mapped onto the one syslog-severity scale of `logtallyd.records.LEVELS`.

Used by the JSON, application-line and raw parsers; syslog formats take severity from PRI instead.
"""
from __future__ import annotations

import re

# The syslog keywords (syslog.conf(5): emerg/panic, alert, crit, err/error, warning/warn, notice,
# info, debug) and the names seen in the wild (log4j, logback, python logging, java.util.logging,
# Serilog's three letters, logrus's four, Go, Rust, Apache error logs) -> syslog severity
# (RFC 5424 §6.2.1 table 2). Keys are upper case. FATAL is CRIT, not EMERG: an application's
# fatal error ends that application ("critical conditions"), while EMERG says the whole system is
# unusable; log4j and Go log FATAL just before one process exits.
_SEVERITY_BY_NAME: dict[str, int] = {
    "EMERG": 0, "EMERGENCY": 0, "PANIC": 0, "PANI": 0,
    "ALERT": 1,
    "CRIT": 2, "CRITICAL": 2, "FATAL": 2, "FATA": 2, "FTL": 2,
    "ERROR": 3, "ERR": 3, "ERRO": 3, "EROR": 3, "SEVERE": 3,
    "WARNING": 4, "WARN": 4, "WRN": 4,
    "NOTICE": 5,
    "INFO": 6, "INFORMATION": 6, "INFORMATIONAL": 6, "INF": 6,
    "DEBUG": 7, "DEBU": 7, "DBG": 7, "TRACE": 7, "TRAC": 7, "FINE": 7, "FINER": 7, "FINEST": 7,
    "VERBOSE": 7, "VRB": 7,
}
# Same table keyed by every spelling we have already met (INFO, info, Info...), filled lazily,
# so the hot path is one dict lookup instead of .upper() + lookup.
_seen: dict[str, int | None] = dict(_SEVERITY_BY_NAME)
_SEEN_LIMIT = 4096

# pino/bunyan numeric levels (the usual meaning of a number in a JSON `level` field).
_SEVERITY_BY_NUMBER: dict[int, int] = {10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2}


def severity_of_name(name: str) -> int | None:
    """Severity for a level word such as `WARN`, `warning`, `Fatal`; None when not a level."""
    sev = _seen.get(name, -1)
    if sev != -1:
        return sev  # type: ignore[return-value]
    if len(name) > 16:
        return None
    sev = _SEVERITY_BY_NAME.get(name.strip().upper())
    if len(_seen) < _SEEN_LIMIT:
        _seen[name] = sev
    return sev


def severity_of_number(value: int) -> int | None:
    """A numeric level: 0..7 is a syslog severity, 10..60 (steps of 10) a pino/bunyan level."""
    if 0 <= value <= 7:
        return value
    return _SEVERITY_BY_NUMBER.get(value)


# Raw lines: the first level word that stands alone (word boundaries, any case): every syslog
# keyword and its long form, plus fatal, trace and verbose. The three- and four-letter forms
# (`inf`, `dbg`, `erro`...) are left to level fields: in free text they are other words. The
# lookahead on the first letters rejects most word starts before the alternation is tried.
_KEYWORD = re.compile(
    r"\b(?=[acdefinptvw])(emerg(?:ency)?|panic|alert|crit(?:ical)?|fatal|err(?:or)?|warn(?:ing)?"
    r"|notice|info(?:rmational)?|debug|trace|verbose)\b",
    re.IGNORECASE,
)


def infer_severity(text: str) -> int | None:
    """Keyword heuristic for raw lines: severity of the first level word in the text, if any."""
    m = _KEYWORD.search(text)
    if m is None:
        return None
    return _SEVERITY_BY_NAME[m.group(1).upper()]
