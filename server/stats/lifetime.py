"""Counts since this process began listening, for Prometheus counters: the since-start totals of
`Stats` (which a snapshot restores and an archive replay adds to) less what they held then.

A counter must only go up within a process and restart from zero with it (`rate()` reads a drop
as a restart); the STATS totals go on across restarts, so the two are kept apart by a baseline
taken once, when the listeners open. Pure: `Stats` and the detectors' counters in, figures out.
"""
from __future__ import annotations

from typing import Mapping

import msgspec

from logtallyd.records import LEVELS
from logtallyd.stats.windows import Stats

__all__ = ["LEVEL_KEYS", "STATUS_CLASSES", "Totals", "status_class", "totals_of"]

LEVEL_KEYS: tuple[str, ...] = (*LEVELS, "OTHER")  # STATS `by_level` keys
STATUS_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx", "invalid")  # STATS `http.by_class` keys
_EVENT_PREFIX = "events_"  # the detect engine counts each event kind as `events_<kind>`


def status_class(status: int) -> str:
    """`5xx` for 503; `invalid` for a status outside 100..599 (the buckets keep those as 0)."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "invalid"


class Totals(msgspec.Struct):
    """The monotonic figures of STATS `all`, and anomaly events by kind."""

    received: int = 0
    parsed: int = 0
    bytes: int = 0
    late: int = 0
    future: int = 0
    rejected: dict[str, int] = {}
    by_format: dict[str, int] = {}
    by_level: dict[str, int] = {}
    by_status_class: dict[str, int] = {}
    events: dict[str, int] = {}

    def since(self, start: Totals) -> Totals:
        """What was counted after `start` (a `Totals` of the same figures taken earlier)."""
        return Totals(
            self.received - start.received, self.parsed - start.parsed, self.bytes - start.bytes,
            self.late - start.late, self.future - start.future,
            *(_minus(getattr(self, name), getattr(start, name))
              for name in ("rejected", "by_format", "by_level", "by_status_class", "events")),
        )


def totals_of(stats: Stats, detect_counters: Mapping[str, int]) -> Totals:
    """The totals `stats` and the detect engine's counters hold now."""
    total = stats.total
    by_class: dict[str, int] = {}
    for status, n in total.by_status.items():
        key = status_class(status)
        by_class[key] = by_class.get(key, 0) + n
    events = {name[len(_EVENT_PREFIX):]: n for name, n in detect_counters.items() if name.startswith(_EVENT_PREFIX)}
    return Totals(stats.received, total.lines, stats.bytes, stats.late, stats.future, dict(stats.rejected),
                  dict(stats.by_format), dict(total.by_level), by_class, events)


def _minus(now: dict[str, int], start: dict[str, int]) -> dict[str, int]:
    return {key: n - start.get(key, 0) for key, n in now.items()}
