"""The `[stats]` section of config.toml: which windows exist, how large the sketches are and when
exact counts give way to them.

Kept apart from `windows` so that loading the config does not import the sketches (numpy).
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# A window is named in commands (`STATS 5m`, `TOP ip 10 1h`): one word; "all" (since start)
# always exists and cannot be redefined.
WindowName = Annotated[str, msgspec.Meta(pattern=r"^(?!all$)[A-Za-z0-9_.-]{1,32}$")]
# Per-second buckets are kept for the largest window: a day of them at most.
WindowSeconds = Annotated[int, msgspec.Meta(ge=1, le=86400)]


def _default_windows() -> dict[str, int]:
    return {"1m": 60, "5m": 300, "15m": 900}


class StatsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The `[stats]` section of config.toml."""

    windows: Annotated[dict[WindowName, WindowSeconds], msgspec.Meta(min_length=1, max_length=64)] = (
        msgspec.field(default_factory=_default_windows)
    )
    # Top-N of an unbounded field (ip, path, ...) is exact while its distinct values in a bucket
    # fit `exact_keys` (per second: `second_exact_keys`), a frequent-items sketch of 2**lg slots
    # (datasketches lg_max_map_size 3..26) with guaranteed bounds beyond. lg 13 keeps the top 10
    # of a Zipf(1.1) stream of 2M lines within 0.6% (bench/topn.py); 16 is several MiB per sketch.
    exact_keys: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 4096  # minute/total/query
    second_exact_keys: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 512  # per second
    topk_lg_size: Annotated[int, msgspec.Meta(ge=3, le=16)] = 13  # minute/total/query: 6144 values tracked
    second_lg_size: Annotated[int, msgspec.Meta(ge=3, le=16)] = 8  # per second (window edges only): 192 values
    # Distinct counts (HLL): relative standard error 1.04 / sqrt(2**lg_k), 1.6% at 12; a dense
    # sketch is 2**lg_k bytes (datasketches lg_k 4..21).
    distinct_lg_k: Annotated[int, msgspec.Meta(ge=4, le=16)] = 12
    kll_k: Annotated[int, msgspec.Meta(ge=8, le=65535)] = 200  # latency quantiles: 1.33% rank error (KLL k is uint16)
    # Lines stamped further ahead of the clock are counted as `future`.
    max_future_s: Annotated[int, msgspec.Meta(ge=0, le=366 * 86400)] = 300
    anchor: Literal["event", "wall"] = "event"  # what a window ends at (see `windows`)
    report_keys: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 20  # entries of by_service / by_host in a report
