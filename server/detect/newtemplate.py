"""New error template detector: the first time an ERROR-or-worse template appears (any service),
after a warm-up in which every template is learned silently. A masked template is new only if its
grouped template (`stats.grouping`, with the most recent remembered ones of its length) is; remembered
templates are bounded (least recently seen forgotten first) and a flood is rate-limited per minute.
"""
from __future__ import annotations

import msgspec

from logtallyd.detect.config import DetectConfig, NewTemplateConfig
from logtallyd.detect.detector import SectionDetector
from logtallyd.detect.events import Event, NewTemplate
from logtallyd.detect.feed import Second
from logtallyd.stats.grouping import group_templates


class NewTemplateState(msgspec.Struct):
    first_second: int | None = None
    known: dict[str, int] = {}  # template -> last second seen, least recently seen first
    minute: int = -1
    minute_events: int = 0
    suppressed: int = 0  # new templates learned silently over max_events_per_minute
    forgotten: int = 0


class NewTemplateDetector(SectionDetector[NewTemplateConfig, NewTemplateState]):
    def section(self, config: DetectConfig) -> NewTemplateConfig:
        return config.newtemplate

    def figures(self) -> dict[str, int]:
        return {"suppressed_new_templates": self.state.suppressed}

    def reconfigure(self, config: DetectConfig) -> None:
        """A smaller `max_templates` forgets the least recently seen at once."""
        super().reconfigure(config)
        self._forget()

    def step(self, second: int, data: Second | None) -> list[Event]:
        state, config = self.state, self.config
        if state.first_second is None:
            state.first_second = second
        if data is None or not data.templates:
            return []
        warming = second < state.first_second + config.warmup_s
        known = state.known
        fresh = {t for by_template in data.templates.values() for t in by_template if t not in known}
        groups, known_groups = _groups(fresh, known, config.max_grouped) if fresh and not warming else ({}, set())
        events: list[Event] = []
        for service in sorted(data.templates):
            templates = data.templates[service]
            for template in sorted(templates):
                if known.pop(template, None) is None and not warming:
                    group = groups[template]
                    # A word that varies like a value (the grouping masks it) is not a new template.
                    if group in known_groups:
                        known[template] = second
                        continue
                    known_groups.add(group)  # one event per group in a second
                    minute = second // 60
                    if minute != state.minute:
                        state.minute, state.minute_events = minute, 0
                    if state.minute_events < config.max_events_per_minute:
                        state.minute_events += 1
                        tally = templates[template]
                        events.append(
                            NewTemplate(
                                tally.order[0],  # event time of its first occurrence
                                "newtemplate",
                                service,
                                group,
                                tally.example,
                                tally.count,
                            )
                        )
                    else:
                        state.suppressed += 1
                known[template] = second  # re-inserted last: dict order is recency order
        self._forget()
        return events

    def _forget(self) -> None:
        known = self.state.known
        while len(known) > self.config.max_templates:
            del known[next(iter(known))]
            self.state.forgotten += 1


def _groups(fresh: set[str], known: dict[str, int], limit: int) -> tuple[dict[str, str], set[str]]:
    """The grouped template of each fresh one (grouped with the `limit` most recently seen
    remembered templates of each of their token counts), and the grouped templates those
    remembered ones have in that grouping."""
    if limit == 0:
        return {t: t for t in fresh}, set()
    wanted = {t.count(" "): limit for t in fresh}
    pool: list[str] = []
    for t in reversed(known):  # most recently seen first
        n = t.count(" ")
        left = wanted.get(n, 0)
        if left:
            pool.append(t)
            wanted[n] = left - 1
            if not any(wanted.values()):
                break
    groups = group_templates([*pool, *fresh])
    return groups, {groups[t] for t in pool}
