"""Error spike detector: ERROR-or-worse lines in a sliding event-time window, per service and
overall ("*"). Fires once when the window's count reaches the threshold and sends `resolved`
once it falls below the lower threshold, so a long burst is two events, not a storm.
"""
from __future__ import annotations

import msgspec

from logtallyd.detect.config import DetectConfig, SpikeConfig
from logtallyd.detect.detector import SectionDetector
from logtallyd.detect.events import ErrorSpike, Event, Resolved, TemplateCount
from logtallyd.detect.feed import Second

OVERALL = "*"
TEMPLATES_PER_SECOND = 20  # per key and second; top templates are taken from these


class Entry(msgspec.Struct, array_like=True):
    second: int
    count: int
    templates: dict[str, int]


class KeyState(msgspec.Struct):
    entries: list[Entry] = []  # seconds with errors inside the window, oldest first
    total: int = 0
    active: bool = False
    silent: bool = False  # an overall episode opened while a service spike said it already
    started: float = 0.0
    peak: int = 0


class SpikeState(msgspec.Struct):
    keys: dict[str, KeyState] = {}
    untracked: int = 0  # errors of services beyond max_services


class SpikeDetector(SectionDetector[SpikeConfig, SpikeState]):
    def section(self, config: DetectConfig) -> SpikeConfig:
        return config.spike

    def figures(self) -> dict[str, int]:
        return {"untracked_spike_errors": self.state.untracked}

    def step(self, second: int, data: Second | None) -> list[Event]:
        keys = self.state.keys
        if data is not None and data.services:
            overall = 0
            overall_templates: dict[str, int] = {}
            for service in sorted(data.services):
                errors = data.services[service].errors
                if errors == 0:
                    continue
                overall += errors
                templates = _top(data.templates.get(service, {}))
                for template, count in templates.items():
                    overall_templates[template] = overall_templates.get(template, 0) + count
                state = keys.get(service)
                if state is None:
                    if len(keys) - (OVERALL in keys) >= self.config.max_services:
                        self.state.untracked += errors
                        continue
                    state = keys[service] = KeyState()
                _add(state, Entry(second, errors, templates))
            if overall:
                state = keys.get(OVERALL)
                if state is None:
                    state = keys[OVERALL] = KeyState()
                _add(state, Entry(second, overall, _top_counts(overall_templates)))
        oldest = second - self.config.window_s + 1
        events: list[Event] = []
        for key in sorted(keys):
            if key != OVERALL:
                self._evaluate(key, keys[key], second, oldest, events)
        if OVERALL in keys:
            self._evaluate(OVERALL, keys[OVERALL], second, oldest, events)
        for key in [k for k, s in keys.items() if not s.entries and not s.active]:
            del keys[key]
        return events

    def _evaluate(
        self, key: str, state: KeyState, second: int, oldest: int, events: list[Event]
    ) -> None:
        config = self.config
        entries = state.entries
        while entries and entries[0].second < oldest:
            state.total -= entries.pop(0).count
        if key == OVERALL:
            threshold, lower = config.overall_threshold, config.overall_resolve_below
        else:
            threshold, lower = config.threshold, config.resolve_below
        if not state.active:
            if state.total >= threshold:
                state.active, state.started, state.peak = True, float(second), state.total
                state.silent = key == OVERALL and not config.overall_when_service_active and any(
                    s.active for k, s in self.state.keys.items() if k != OVERALL
                )
                if not state.silent:
                    events.append(
                        ErrorSpike(
                            float(second),
                            "spike",
                            key,
                            state.total,
                            config.window_s,
                            threshold,
                            self._top_templates(state),
                        )
                    )
            return
        state.peak = max(state.peak, state.total)
        if state.total < lower:
            state.active = False
            if not state.silent:
                events.append(
                    Resolved(
                        float(second),
                        "spike",
                        key,
                        "error_spike",
                        state.total,
                        state.peak,
                        state.started,
                    )
                )
            state.silent = False

    def _top_templates(self, state: KeyState) -> list[TemplateCount]:
        window: dict[str, int] = {}
        for entry in state.entries:
            for template, count in entry.templates.items():
                window[template] = window.get(template, 0) + count
        ranked = sorted(window.items(), key=lambda item: (-item[1], item[0]))
        return [TemplateCount(t, c) for t, c in ranked[: self.config.top_templates]]


def _add(state: KeyState, entry: Entry) -> None:
    state.entries.append(entry)
    state.total += entry.count


def _top(templates: dict) -> dict[str, int]:
    return _top_counts({t: tally.count for t, tally in templates.items()})


def _top_counts(counts: dict[str, int]) -> dict[str, int]:
    """At most TEMPLATES_PER_SECOND, the most frequent, ties by name (deterministic)."""
    if len(counts) <= TEMPLATES_PER_SECOND:
        return dict(sorted(counts.items()))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return dict(ranked[:TEMPLATES_PER_SECOND])
