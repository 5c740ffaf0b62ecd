"""The `[detect]` section of config.toml: thresholds and limits of every anomaly detector.

Decoded by msgspec like the rest of the config (unknown keys fail at start and on SIGHUP);
`check_detect` holds the limits a type cannot express and names the offending key.
"""
from __future__ import annotations

import re
from typing import Literal

import msgspec


class Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class SpikeConfig(Strict):
    """Error spike: ERROR-or-worse lines in a sliding window, per service and overall."""

    enabled: bool = True
    window_s: int = 60
    threshold: int = 50  # per service: fire when the window holds at least this many errors
    resolve_below: int = 10  # per service: `resolved` once the window holds fewer (hysteresis)
    overall_threshold: int = 100  # all services together (key "*")
    overall_resolve_below: int = 20
    # When a per-service spike is already active, an overall spike says nothing new: stay silent.
    overall_when_service_active: bool = False
    top_templates: int = 5
    max_services: int = 1000  # services with errors in the window; more are counted, not tracked


class ZScoreConfig(Strict):
    """Rolling (EWMA) mean and std of lines/s, error rate and p95 latency, per service."""

    enabled: bool = True
    interval_s: int = 10  # one sample per service per interval (silent intervals are no sample)
    window: int = 60  # EWMA span in samples: alpha = 2 / (window + 1)
    min_samples: int = 30
    k: float = 4.0
    # std used in z is max(std, floor, rel_floor * |mean|), so a perfectly steady series
    # does not turn the first jitter into an infinite z.
    rel_floor: float = 0.05
    lines_floor: float = 1.0  # lines/s
    error_rate_floor: float = 0.02  # errors / lines
    latency_floor_ms: float = 1.0
    min_latency_count: int = 5  # latency values an interval needs for a p95 sample
    max_services: int = 1000
    expire_s: int = 3600  # a service silent this long forgets its baseline


class SuspiciousConfig(Strict):
    """Suspicious IP: HTTP 4xx/5xx count or share per client IP over a sliding window."""

    enabled: bool = True
    window_s: int = 60
    min_bad: int = 100  # fire on this many 4xx/5xx in the window ...
    min_requests: int = 20  # ... or, with at least this many requests,
    share: float = 0.8  # ... on this share of 4xx/5xx
    resolve_ratio: float = 0.5  # resolved when count and share fall below ratio * thresholds
    max_ips: int = 10000  # IPs tracked at once; more are counted, not tracked


class NewTemplateConfig(Strict):
    """New error template: an ERROR-or-worse template never seen before, after a warm-up."""

    enabled: bool = True
    warmup_s: int = 300  # event-time seconds from the first processed second: learn silently
    max_templates: int = 100000  # remembered templates; the least recently seen are forgotten
    max_events_per_minute: int = 20  # more new templates in a minute are learned silently


class PatternLimits(Strict):
    max_keys: int = 10000  # keys with a partial match, per pattern; more are counted, not tracked
    max_matches_per_feed: int = 10000  # step-matching records one batch may carry


class Pattern(Strict):
    """An ordered sequence of message matchers keyed by a field.

    A step is a substring of the message, or a regular expression when written `re:...`.
    Each step must follow the previous one (same key) within `max_gap_s` seconds; lines in
    between that match nothing are ignored.
    """

    name: str
    steps: list[str]
    key: Literal["ip", "host", "service"] = "ip"
    max_gap_s: float = 60.0


SSH_BRUTE_FORCE = Pattern(
    name="ssh_brute_force",
    key="ip",
    steps=["Failed password", "Failed password", "Failed password", "Accepted password"],
    max_gap_s=60.0,
)


class DetectConfig(Strict):
    keep_events: int = 1000  # the last N events answer `EVENTS [n]`
    # Seconds without data are walked one by one so windows slide and episodes resolve; past
    # this many in a row the walk jumps to the next second that has data (a 2-year gap in
    # timestamps costs this many steps, not 63 million). Must cover the longest window.
    max_empty_walk_s: int = 3600
    spike: SpikeConfig = SpikeConfig()
    zscore: ZScoreConfig = ZScoreConfig()
    suspicious: SuspiciousConfig = SuspiciousConfig()
    newtemplate: NewTemplateConfig = NewTemplateConfig()
    pattern: PatternLimits = PatternLimits()
    patterns: list[Pattern] = msgspec.field(default_factory=lambda: [SSH_BRUTE_FORCE])


def check_detect(config: DetectConfig, prefix: str = "detect") -> str | None:
    """Limits that a type alone cannot express; the message names the key."""
    positive = {
        "keep_events": config.keep_events,
        "max_empty_walk_s": config.max_empty_walk_s,
        "spike.window_s": config.spike.window_s,
        "spike.threshold": config.spike.threshold,
        "spike.overall_threshold": config.spike.overall_threshold,
        "spike.max_services": config.spike.max_services,
        "zscore.interval_s": config.zscore.interval_s,
        "zscore.window": config.zscore.window,
        "zscore.min_samples": config.zscore.min_samples,
        "zscore.k": config.zscore.k,
        "zscore.max_services": config.zscore.max_services,
        "zscore.expire_s": config.zscore.expire_s,
        "suspicious.window_s": config.suspicious.window_s,
        "suspicious.min_bad": config.suspicious.min_bad,
        "suspicious.min_requests": config.suspicious.min_requests,
        "suspicious.share": config.suspicious.share,
        "suspicious.resolve_ratio": config.suspicious.resolve_ratio,
        "suspicious.max_ips": config.suspicious.max_ips,
        "newtemplate.max_templates": config.newtemplate.max_templates,
        "pattern.max_keys": config.pattern.max_keys,
        "pattern.max_matches_per_feed": config.pattern.max_matches_per_feed,
    }
    for key, value in positive.items():
        if value <= 0:
            return f"{prefix}.{key} must be > 0 (got {value})"
    spike = config.spike
    if not 1 <= spike.resolve_below <= spike.threshold:
        return f"{prefix}.spike.resolve_below must be in 1..spike.threshold (got {spike.resolve_below})"
    if not 1 <= spike.overall_resolve_below <= spike.overall_threshold:
        return (
            f"{prefix}.spike.overall_resolve_below must be in 1..spike.overall_threshold"
            f" (got {spike.overall_resolve_below})"
        )
    if config.suspicious.share > 1 or config.suspicious.resolve_ratio > 1:
        return f"{prefix}.suspicious.share and resolve_ratio must be <= 1"
    longest = max(config.spike.window_s, config.suspicious.window_s)
    if config.max_empty_walk_s < longest:
        return f"{prefix}.max_empty_walk_s must cover the longest window ({longest} s)"
    names: set[str] = set()
    for i, pattern in enumerate(config.patterns):
        where = f"{prefix}.patterns[{i}]"
        if not pattern.name or pattern.name in names:
            return f"{where}.name must be non-empty and unique (got {pattern.name!r})"
        names.add(pattern.name)
        if not pattern.steps:
            return f"{where}.steps must not be empty"
        if pattern.max_gap_s <= 0:
            return f"{where}.max_gap_s must be > 0 (got {pattern.max_gap_s})"
        for j, step in enumerate(pattern.steps):
            if not step or step == "re:":
                return f"{where}.steps[{j}] must not be empty"
            if step.startswith("re:"):
                try:
                    re.compile(step[3:])
                except re.error as exc:
                    return f"{where}.steps[{j}]: invalid regular expression: {exc}"
    return None
