"""Anomaly events: what detectors emit and subscribers receive, as tagged msgspec Structs.

Every event encodes as one JSON object whose `type` field names its kind, with `ts`, the
event time in Unix seconds (UTC, a float like `Record.ts`; clients format it), `detector`,
`key` (a service, "*" for all services, an IP, or a pattern's key value) and its figures.
"""
from __future__ import annotations

from typing import Union

import msgspec


class Event(msgspec.Struct, frozen=True, tag_field="type"):
    ts: float
    detector: str
    key: str

    @property
    def type(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]


class TemplateCount(msgspec.Struct, frozen=True):
    template: str
    count: int


class ErrorSpike(Event, frozen=True, tag="error_spike"):
    """The window's error count reached the threshold (rising edge only)."""

    count: int
    window_s: int
    threshold: int
    top_templates: list[TemplateCount]


class Resolved(Event, frozen=True, tag="resolved"):
    """An episode (`of`: "error_spike" or "suspicious_ip") fell back below its lower threshold."""

    of: str
    count: int  # the window's count when it resolved
    peak: int  # highest window count during the episode
    started: float  # ts of the event that opened the episode


class ZScore(Event, frozen=True, tag="zscore"):
    """One interval's metric lies more than k standard deviations from its rolling mean.

    `ts` is the start of the interval [ts, ts + interval_s); the event is found at its end.
    """

    metric: str  # "lines_per_s" | "error_rate" | "p95_latency_ms"
    value: float
    mean: float
    std: float  # the std used for z (floored, see ZScoreConfig)
    z: float
    samples: int
    interval_s: int


class PatternMatch(Event, frozen=True, tag="pattern"):
    """All steps of a pattern matched, in order, for one key value."""

    pattern: str
    field: str  # "ip" | "host" | "service"
    timestamps: list[float]  # one per step, the matched lines' event times
    lines: list[str]  # the matched messages (truncated)


class SuspiciousIp(Event, frozen=True, tag="suspicious_ip"):
    """A client IP's 4xx/5xx responses in the window crossed the count or share threshold."""

    bad: int
    total: int
    share: float
    window_s: int
    reason: str  # "count" | "share"


class NewTemplate(Event, frozen=True, tag="new_template"):
    """An ERROR-or-worse template seen for the first time (after the warm-up)."""

    template: str
    example: str
    count: int  # occurrences in the second it first appeared


class SenderSilent(Event, frozen=True, tag="sender_silent"):
    """A sender with a steady rhythm sent nothing for longer than its configured multiple of its
    usual gap (`key`: its address)."""

    silent_s: int  # event seconds since its last line
    usual_gap_s: float
    last_line: float  # the event second of its last line


class SenderBack(Event, frozen=True, tag="sender_back"):
    """A sender that was `sender_silent` sent again."""

    silent_s: int  # event seconds it was away
    usual_gap_s: float
    lines: int  # in the second it came back


class SenderFlood(Event, frozen=True, tag="sender_flood"):
    """One event second held far more of a sender's lines than its baseline (rising edge; a
    `resolved` with `of` = "sender_flood" follows once a second is back under the factor)."""

    lines: int
    baseline: float  # its usual lines per active second
    factor: float  # lines / baseline


AnyEvent = Union[ErrorSpike, Resolved, ZScore, PatternMatch, SuspiciousIp, NewTemplate, SenderSilent, SenderBack,
                 SenderFlood]

json_encoder = msgspec.json.Encoder()
json_decoder = msgspec.json.Decoder(AnyEvent)


def encode_event(event: Event) -> bytes:
    """One JSON object, no newline (the publisher frames it)."""
    return json_encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    return json_decoder.decode(data)
