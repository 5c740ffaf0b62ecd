"""Filters for the `tail` topic: `level>=error service=api ip=1.2.3.4 host=web1 format=json contains:text`.

All terms must hold. A filter is compiled once into a predicate over a record dict (the record as
`logtallyd parse` prints it), so the same filter runs in workers and in the main process.
"""
from __future__ import annotations

from typing import Any, Callable

from logtallyd.records import SEVERITY_OF

Predicate = Callable[[dict[str, Any]], bool]

_FIELDS = ("service", "host", "format", "msgid", "procid")
_LEVEL_ALIASES = {"WARN": "WARNING", "ERR": "ERROR", "FATAL": "CRIT", "CRITICAL": "CRIT", "EMERGENCY": "EMERG"}


def compile_filter(terms: list[str]) -> Predicate | str:
    """Compile filter words into a predicate, or return an error message."""
    checks: list[Predicate] = []
    for term in terms:
        check = _compile_term(term)
        if isinstance(check, str):
            return check
        checks.append(check)
    return lambda record: all(check(record) for check in checks)


def _compile_term(term: str) -> Predicate | str:
    lowered = term.lower()
    if lowered.startswith("contains:"):
        needle = term.split(":", 1)[1]
        return lambda r: needle in (r.get("message") or "")
    for op in (">=", "<=", "="):
        if op in term:
            name, value = term.split(op, 1)
            name = name.lower()
            break
    else:
        return f"bad filter term {term!r}: use level>=error, service=api, ip=..., host=..., contains:text"
    if name == "level":
        level = _LEVEL_ALIASES.get(value.upper(), value.upper())
        if level not in SEVERITY_OF:
            return f"unknown level {value!r}"
        want = SEVERITY_OF[level]
        # Lower severity numbers are worse, so `level>=error` means severity <= 3.
        if op == ">=":
            return lambda r: r.get("severity") is not None and r["severity"] <= want
        if op == "<=":
            return lambda r: r.get("severity") is not None and r["severity"] >= want
        return lambda r: r.get("severity") == want
    if op != "=":
        return f"only level takes {op!r}"
    if name == "ip":
        return lambda r: (r.get("http") or {}).get("ip") == value
    if name == "status":
        return lambda r: str((r.get("http") or {}).get("status")) == value
    if name in _FIELDS:
        return lambda r: r.get(name) == value
    return f"unknown filter field {name!r}"
