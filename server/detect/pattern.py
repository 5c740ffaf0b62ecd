"""Ordered temporal pattern detector: configured sequences of message matchers per key value
(ip, host or service), each step within `max_gap_s` of the previous, in event-time order.

Per key it keeps, for each step i, the latest-ending match of steps 0..i (a later end never
hurts, since gaps are measured from it), so lines that match nothing or are out of place are
skipped without losing a sequence. State per key is bounded by the steps, expires once no
prefix can be extended, and the number of keys per pattern is capped.
"""
from __future__ import annotations

import msgspec

from logtallyd.detect.config import DetectConfig, Pattern, PatternLimits
from logtallyd.detect.events import Event, PatternMatch
from logtallyd.detect.feed import Match, Second, pattern_id


class Prefix(msgspec.Struct, array_like=True):
    times: list[float]
    lines: list[str]


class KeyState(msgspec.Struct, array_like=True):
    last: float  # time of the latest match used: expiry
    prefixes: list[Prefix | None]


class PatternState(msgspec.Struct):
    ident: str  # pattern_id of the definition this state was built for
    keys: dict[str, KeyState] = {}  # least recently extended first
    untracked: int = 0  # step-0 matches of keys beyond max_keys


class PatternDetector:
    """Every configured pattern (`[[detect.patterns]]`, limits from `[detect.pattern]`); its
    state is one `PatternState` per pattern name, held in the engine's snapshot."""

    enabled = True  # with no pattern configured a step does nothing

    def __init__(self, config: DetectConfig, states: dict[str, PatternState]) -> None:
        self.patterns: list[Pattern] = []
        self.limits: PatternLimits = config.pattern
        self.states = states
        self.reconfigure(config)

    def reconfigure(self, config: DetectConfig) -> None:
        """Keep the state of every pattern whose name, key and steps are unchanged (in place:
        the snapshot holds this very dict)."""
        old = dict(self.states)
        self.states.clear()
        for pattern in config.patterns:
            ident = pattern_id(pattern)
            kept = old.get(pattern.name)
            self.states[pattern.name] = kept if kept is not None and kept.ident == ident else (
                PatternState(ident)
            )
        self.patterns = list(config.patterns)
        self.limits = config.pattern

    def figures(self) -> dict[str, int]:
        return {"untracked_pattern_keys": sum(s.untracked for s in self.states.values())}

    def step(self, second: int, data: Second | None) -> list[Event]:
        """Feed the second's matches (steps index self.patterns) in record order; then expire."""
        events: list[Event] = []
        if data is not None and data.matches:
            for match in sorted(data.matches, key=lambda m: m.order):
                by_pattern: dict[int, list[int]] = {}
                for p, s in match.steps:
                    by_pattern.setdefault(p, []).append(s)
                for p in sorted(by_pattern):
                    if p < len(self.patterns):
                        self._advance(self.patterns[p], by_pattern[p], match, events)
        horizon = second + 1  # every later match is at least this late
        for pattern in self.patterns:
            keys = self.states[pattern.name].keys
            while keys:
                key = next(iter(keys))
                if horizon - keys[key].last <= pattern.max_gap_s:
                    break
                del keys[key]
        return events

    def _advance(self, pattern: Pattern, steps: list[int], match: Match, events: list[Event]) -> None:
        key = getattr(match, pattern.key)
        if key is None:
            return
        state = self.states[pattern.name]
        current = state.keys.get(key)
        if current is None:
            if 0 not in steps:
                return  # a later step with no sequence under way: nothing to extend
            if len(state.keys) >= self.limits.max_keys:
                state.untracked += 1
                return
            current = KeyState(match.ts, [None] * len(pattern.steps))
        t, line = match.ts, match.message
        changed = False
        prefixes = current.prefixes
        # Highest step first, so one line never serves as two consecutive steps.
        for s in sorted(steps, reverse=True):
            if s >= len(prefixes):
                continue
            if s == 0:
                prefixes[0] = Prefix([t], [line])
                changed = True
                continue
            before = prefixes[s - 1]
            if before is not None and t - before.times[-1] <= pattern.max_gap_s:
                prefixes[s] = Prefix(before.times + [t], before.lines + [line])
                changed = True
        done = prefixes[-1]
        if done is not None:
            events.append(
                PatternMatch(t, "pattern", key, pattern.name, pattern.key, done.times, done.lines)
            )
            state.keys.pop(key, None)  # a match consumes its lines: the key starts afresh
            return
        if changed:
            current.last = t
            state.keys.pop(key, None)
            state.keys[key] = current  # at the end: dict order is recency order
