"""The `[detect]` section of config.toml: thresholds and limits of every anomaly detector.

Decoded by msgspec like the rest of the config (unknown keys fail at start and on SIGHUP); each
limit's range is on its field, and the checks between keys (a resolve level below its
threshold, the empty walk covering the longest window, pattern names unique, step regexes that
compile) are in `logtallyd.daemon.config.check_config`.
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

_DAY = 86400
Count = Annotated[int, msgspec.Meta(ge=1)]  # a threshold or a table size: at least one
Seconds = Annotated[int, msgspec.Meta(ge=1, le=_DAY)]  # a window or an interval of event seconds
Share = Annotated[float, msgspec.Meta(gt=0, le=1)]


class Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class SpikeConfig(Strict):
    """Error spike: ERROR-or-worse lines in a sliding window, per service and overall."""

    enabled: bool = True
    window_s: Seconds = 60
    threshold: Count = 50  # per service: fire when the window holds at least this many errors
    resolve_below: Count = 10  # per service: `resolved` once the window holds fewer (hysteresis)
    overall_threshold: Count = 100  # all services together (key "*")
    overall_resolve_below: Count = 20
    # When a per-service spike is already active, an overall spike says nothing new: stay silent.
    overall_when_service_active: bool = False
    top_templates: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5  # 0 = the event lists none
    max_services: Count = 1000  # services with errors in the window; more are counted, not tracked


class ZScoreConfig(Strict):
    """Rolling (EWMA) mean and std of lines/s, error rate and p95 latency, per service."""

    enabled: bool = True
    interval_s: Seconds = 10  # one sample per service per interval (silent intervals are no sample)
    window: Count = 60  # EWMA span in samples: alpha = 2 / (window + 1)
    min_samples: Count = 30
    k: Annotated[float, msgspec.Meta(gt=0)] = 4.0
    # std used in z is max(std, floor, rel_floor * |mean|), so a perfectly steady series
    # does not turn the first jitter into an infinite z: the floors are > 0 for that reason.
    rel_floor: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.05
    lines_floor: Annotated[float, msgspec.Meta(gt=0)] = 1.0  # lines/s
    error_rate_floor: Share = 0.02  # errors / lines
    latency_floor_ms: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    min_latency_count: Count = 5  # latency values an interval needs for a p95 sample
    max_services: Count = 1000
    # A service silent this long forgets its baseline.
    expire_s: Annotated[int, msgspec.Meta(ge=1, le=366 * _DAY)] = 3600


class SuspiciousConfig(Strict):
    """Suspicious IP: HTTP 4xx/5xx count or share per client IP over a sliding window."""

    enabled: bool = True
    window_s: Seconds = 60
    min_bad: Count = 100  # fire on this many 4xx/5xx in the window ...
    min_requests: Count = 20  # ... or, with at least this many requests,
    share: Share = 0.8  # ... on this share of 4xx/5xx
    resolve_ratio: Share = 0.5  # resolved when count and share fall below ratio * thresholds
    max_ips: Count = 10000  # IPs tracked at once; more are counted, not tracked


class NewTemplateConfig(Strict):
    """New error template: an ERROR-or-worse template never seen before, after a warm-up."""

    enabled: bool = True
    # Event-time seconds from the first processed second: learn silently.
    warmup_s: Annotated[int, msgspec.Meta(ge=0, le=366 * _DAY)] = 300
    max_templates: Count = 100000  # remembered templates; the least recently seen are forgotten
    # Remembered templates (the most recently seen) of a fresh one's length that it is grouped
    # with; the grouping costs about 12 ms per thousand (0 = no grouping).
    max_grouped: Annotated[int, msgspec.Meta(ge=0, le=100000)] = 2000
    # More new templates in a minute are learned silently (0 = learn them all silently).
    max_events_per_minute: Annotated[int, msgspec.Meta(ge=0)] = 20


class SendersConfig(Strict):
    """Per sender address (live only: `analyze` of a file knows no sender): silence, return, flood.

    A sender's baseline is learned over the event seconds in which it sent lines: the usual gap
    between them and its lines per such second (EWMAs of span `window`).
    """

    enabled: bool = True
    window: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 60  # EWMA span in active seconds
    min_samples: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 10  # gaps (silence) / active seconds (flood) before it is judged
    # Silent: no line for longer than silent_multiple x its usual gap, and at least min_silent_s.
    silent_multiple: Annotated[float, msgspec.Meta(ge=1, le=10_000)] = 10.0
    min_silent_s: Annotated[int, msgspec.Meta(ge=1, le=_DAY)] = 60
    # Flood: one second holds flood_factor x its usual lines per second, and at least flood_min_lines.
    flood_factor: Annotated[float, msgspec.Meta(ge=1, le=1e6)] = 10.0
    flood_min_lines: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] = 1000
    max_senders: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10000  # the least recently seen are forgotten first


class PatternLimits(Strict):
    max_keys: Count = 10000  # keys with a partial match, per pattern; more are counted, not tracked
    max_matches_per_feed: Count = 10000  # step-matching records one batch may carry


class Pattern(Strict):
    """An ordered sequence of message matchers keyed by a field.

    A step is a substring of the message, or a regular expression when written `re:...`.
    Each step must follow the previous one (same key) within `max_gap_s` seconds; lines in
    between that match nothing are ignored.
    """

    name: Annotated[str, msgspec.Meta(min_length=1)]
    steps: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(min_length=1)]
    key: Literal["ip", "host", "service"] = "ip"
    max_gap_s: Annotated[float, msgspec.Meta(gt=0, le=_DAY)] = 60.0


SSH_BRUTE_FORCE = Pattern(
    name="ssh_brute_force",
    key="ip",
    steps=["Failed password", "Failed password", "Failed password", "Accepted password"],
    max_gap_s=60.0,
)


class DetectConfig(Strict):
    keep_events: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000  # the last N events answer `EVENTS [n]`
    # Seconds without data are walked one by one so windows slide and episodes resolve; past
    # this many in a row the walk jumps to the next second that has data (a 2-year gap in
    # timestamps costs this many steps, not 63 million). Must cover the longest window.
    max_empty_walk_s: Annotated[int, msgspec.Meta(ge=1, le=366 * _DAY)] = 3600
    spike: SpikeConfig = SpikeConfig()
    zscore: ZScoreConfig = ZScoreConfig()
    suspicious: SuspiciousConfig = SuspiciousConfig()
    newtemplate: NewTemplateConfig = NewTemplateConfig()
    senders: SendersConfig = SendersConfig()
    pattern: PatternLimits = PatternLimits()
    patterns: list[Pattern] = msgspec.field(default_factory=lambda: [SSH_BRUTE_FORCE])
