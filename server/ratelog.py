"""Rate-limited logging, so a garbage flood or a connection storm cannot flood the journal.

`RateLimiter` is the sans-I/O core (a fixed window per key, time handed in); `RateLimitedLog`
is the shell the server calls instead of the logger for per-line and per-connection events. A
logged event carries `suppressed=N` when N like it were dropped before it, and `flush` reports
what was dropped at the end of a window, so every event is at least counted in the journal.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

import structlog

OVERFLOW_KEY = "(other keys)"


class RateLimiter:
    """At most `per_key_per_interval` allowed events per key in each window of `interval_s` seconds."""

    def __init__(self, per_key_per_interval: int = 5, interval_s: float = 60.0, max_keys: int = 1024) -> None:
        self.limit = per_key_per_interval
        self.interval_s = interval_s
        self.max_keys = max_keys
        # key -> [window start, allowed in this window, suppressed since the last allowed one]
        self.windows: dict[Hashable, list[Any]] = {}
        self.evicted: list[tuple[Hashable, int]] = []  # suppressed counts of keys dropped to stay bounded

    def allow(self, key: Hashable, now: float) -> tuple[bool, int]:
        """(True, suppressed before this one) when the event may be logged, else (False, suppressed so far)."""
        state = self.windows.get(key)
        if state is None:
            if len(self.windows) >= self.max_keys:
                self.evicted.extend(self.expire(now))
            if len(self.windows) >= self.max_keys:
                key = OVERFLOW_KEY  # many distinct keys at once: share one budget rather than grow
                state = self.windows.get(key)
            if state is None:
                state = self.windows[key] = [now, 0, 0]
        if now - state[0] >= self.interval_s:
            state[0], state[1] = now, 0
        if state[1] < self.limit:
            state[1] += 1
            suppressed, state[2] = state[2], 0
            return True, suppressed
        state[2] += 1
        return False, state[2]

    def expire(self, now: float) -> list[tuple[Hashable, int]]:
        """Forget keys whose window has ended; returns `(key, suppressed)` for those that dropped events."""
        ended = [key for key, state in self.windows.items() if now - state[0] >= self.interval_s]
        report = [(key, self.windows.pop(key)[2]) for key in ended]
        report = [item for item in report if item[1] > 0]
        if self.evicted:
            report, self.evicted = self.evicted + report, []
        return report


class RateLimitedLog:
    """Log through a `RateLimiter`; the limiter key is `(event, key)`, `key` defaulting to None."""

    def __init__(
        self,
        limiter: RateLimiter,
        logger: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter
        self.logger = structlog.get_logger() if logger is None else logger
        self.clock = clock
        self.suppressed_total = 0

    def log(self, level: str, event: str, key: Hashable = None, **fields: Any) -> bool:
        """Log `event` at `level` unless its budget is spent; True when it was logged."""
        allowed, suppressed = self.limiter.allow((event, key), self.clock())
        if not allowed:
            self.suppressed_total += 1
            return False
        if suppressed:
            fields["suppressed"] = suppressed
        getattr(self.logger, level)(event, **fields)
        return True

    def flush(self, now: float | None = None) -> int:
        """Log one `log_suppressed` line per key whose window ended with dropped events (call periodically)."""
        report = self.limiter.expire(self.clock() if now is None else now)
        for limiter_key, count in report:
            event, key = limiter_key if isinstance(limiter_key, tuple) else (limiter_key, None)
            fields = {} if key is None else {"key": key}
            self.logger.info("log_suppressed", suppressed_event=event, suppressed=count, **fields)
        return len(report)
