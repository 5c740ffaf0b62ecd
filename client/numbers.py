"""The one number style of every text report: counts, percentages, bytes, rates, times, durations.

Counts group thousands from five digits on (`12,345`, but `3000`), the SI/ISO 80000-1 usage that
keeps four-digit figures compact; percentages carry two decimals; bytes use IEC binary units;
times are ISO 8601 UTC, or relative (`12s ago`).
"""
from __future__ import annotations

import time

__all__ = ["ago", "count", "duration", "iso_time", "percent", "rate", "size"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def count(n: int | float) -> str:
    if isinstance(n, float) and not n.is_integer():
        return rate(n)
    n = int(n)
    return f"{n:,}" if abs(n) >= 10_000 else str(n)


def rate(x: float) -> str:
    """A per-second figure: one decimal, thousands grouped like counts."""
    return f"{x:,.1f}" if abs(x) >= 10_000 else f"{x:.1f}"


def percent(fraction: float) -> str:
    """0.0483 -> `4.83%`."""
    return f"{fraction * 100:.2f}%"


def size(n: int | float) -> str:
    """Bytes in IEC binary units: `512 B`, `67.1 MiB`."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def iso_time(ts: float) -> str:
    """Unix seconds -> `2025-01-30T12:00:00Z` (UTC, as `logtallyd parse` prints times)."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):
        return str(ts)


def duration(seconds: float) -> str:
    """`45s`, `12m 03s`, `3h 12m`, `2d 04h`: the two leading units are enough to read."""
    s = int(max(0.0, seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


def ago(ts: float, now: float) -> str:
    """How long before `now` the Unix time `ts` was: `12s ago` (`in 5s` for a future time)."""
    delta = now - ts
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"
