"""Level names of every format mapped onto the one syslog-severity scale of `logtallyd.records.LEVELS`.

Used by the JSON, application-line and raw parsers; syslog formats take severity from PRI instead.
"""
from __future__ import annotations

import re

# Names seen in the wild (log4j, logback, python logging, java.util.logging, Go, Rust, Apache
# error logs) -> syslog severity (RFC 5424 §6.2.1 table 2). Keys are upper case.
_SEVERITY_BY_NAME: dict[str, int] = {
    "EMERG": 0, "EMERGENCY": 0, "PANIC": 0,
    "ALERT": 1,
    "CRIT": 2, "CRITICAL": 2, "FATAL": 2,
    "ERROR": 3, "ERR": 3, "EROR": 3, "SEVERE": 3,
    "WARNING": 4, "WARN": 4, "WRN": 4,
    "NOTICE": 5,
    "INFO": 6, "INFORMATION": 6, "INFORMATIONAL": 6, "INF": 6,
    "DEBUG": 7, "DBG": 7, "TRACE": 7, "FINE": 7, "FINER": 7, "FINEST": 7, "VERBOSE": 7,
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


# Raw lines: the first level word that stands alone (word boundaries, any case). `err`/`crit`
# abbreviations are left out: too common inside ordinary words and paths.
_KEYWORD = re.compile(
    r"\b(emerg(?:ency)?|panic|alert|critical|fatal|error|warn(?:ing)?|notice|info|debug|trace)\b",
    re.IGNORECASE,
)


def infer_severity(text: str) -> int | None:
    """Keyword heuristic for raw lines: severity of the first level word in the text, if any."""
    m = _KEYWORD.search(text)
    if m is None:
        return None
    return _SEVERITY_BY_NAME[m.group(1).upper()]
