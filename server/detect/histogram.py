"""Latency histograms for the detectors' feeds: logarithmic buckets, 1 % relative error.

A histogram is a plain `dict[bucket, count]` (as DDSketch, Masson et al., VLDB 2019) of at most
~1,500 keys (1 µs .. ~11.6 days); merging adds counts, so unlike a KLL sketch or a reservoir the
result never depends on the order of merges, and a replay gives the same figures as a stream.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
MIN_MS = 0.001
MAX_MS = 1e9
_MIN_BUCKET = math.ceil(math.log(MIN_MS) / _LOG_GAMMA)
_MAX_BUCKET = math.ceil(math.log(MAX_MS) / _LOG_GAMMA)


def bucket_of(value_ms: float) -> int:
    """The bucket holding `value_ms`: values within 1 % of each other share one."""
    if not value_ms > MIN_MS:  # also catches NaN and negatives
        return _MIN_BUCKET
    if value_ms >= MAX_MS:
        return _MAX_BUCKET
    return math.ceil(math.log(value_ms) / _LOG_GAMMA)


def value_of(bucket: int) -> float:
    """The bucket's representative value (within RELATIVE_ACCURACY of anything in it)."""
    return 2 * GAMMA**bucket / (GAMMA + 1)


def merge_into(target: dict[int, int], source: Mapping[int, int]) -> None:
    for bucket, count in source.items():
        target[bucket] = target.get(bucket, 0) + count


def quantile(histogram: Mapping[int, int], q: float) -> float | None:
    """Nearest-rank quantile (the value at rank ceil(q * n)); None when empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return value_of(bucket)
    return value_of(max(histogram))  # unreachable: seen ends at total >= rank


def histogram_of(values: Iterable[float]) -> dict[int, int]:
    histogram: dict[int, int] = {}
    for value in values:
        b = bucket_of(value)
        histogram[b] = histogram.get(b, 0) + 1
    return histogram
