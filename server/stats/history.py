"""Trends that outlive the process: each closed minute of the statistics as one row of series,
hourly rows aggregated from minute rows, and a query's rows regrouped to its step. Pure: the
SQLite store (`logtallyd.persist.history`) moves the rows to and from disk.

Aggregation over several minutes: counts are summed (exact); latency quantiles take the maximum
of the minutes' quantiles, an upper bound of the longer span's true quantile (a quantile of a
mixture never exceeds its largest part's); `distinct_ip` takes the maximum, a lower bound of the
span's distinct count. Ratios are recomputed from the summed counts.
"""
from __future__ import annotations

from typing import Iterable

from logtallyd.records import LEVELS
from logtallyd.stats import sketches
from logtallyd.stats.aggregate import Bucket

COUNTS: tuple[str, ...] = ("lines", "errors", "requests", "status_5xx", *(f"level_{lv.lower()}" for lv in LEVELS))
MAXIMA: tuple[str, ...] = ("latency_p50", "latency_p95", "latency_p99", "distinct_ip")
STORED: tuple[str, ...] = COUNTS + MAXIMA
RATIOS: dict[str, tuple[str, str]] = {"error_rate": ("errors", "lines"), "rate_5xx": ("status_5xx", "requests")}
SERIES: tuple[str, ...] = STORED + tuple(RATIOS)
_QUANTILES = (("latency_p50", 0.5), ("latency_p95", 0.95), ("latency_p99", 0.99))

Rows = dict[int, dict[str, float]]  # start second of the row -> series -> value


def minute_row(bucket: Bucket, close: bool = True) -> dict[str, float]:
    """The stored series of one minute's rollup (quantiles absent when it had no latency);
    `close=False` for a minute still being merged into, whose sketches stay deserialized."""
    row: dict[str, float] = {
        "lines": bucket.lines,
        "errors": bucket.errors,
        "requests": bucket.requests,
        "status_5xx": sum(n for s, n in bucket.by_status.items() if 500 <= s <= 599),
    }
    for lv in LEVELS:
        row[f"level_{lv.lower()}"] = bucket.by_level.get(lv, 0)
    if bucket.lat_n:
        q = bucket.quantiles()
        for name, rank in _QUANTILES:
            row[name] = q.get_quantile(rank, True)  # inclusive rank, as STATS reports them
    row["distinct_ip"] = sketches.distinct_estimate(bucket.distinct_union("ip"))[0]
    if close:
        bucket.compact()  # reading deserialized the sketches; a closed minute keeps them as bytes
    return row


def due_minutes(minutes: dict[int, Bucket], anchor: int, written: dict[int, int]) -> list[int]:
    """Minutes (keys `second // 60`) the anchor has moved past whose line count differs from the
    one last written (`written`: minute -> lines): new ones, and old ones late lines reached."""
    current = anchor // 60
    return sorted(m for m, b in minutes.items() if m < current and written.get(m) != b.lines)


def regroup(rows: Rows, step: int) -> Rows:
    """`rows` merged into spans of `step` seconds (sums of counts, maxima of the rest)."""
    out: Rows = {}
    for ts in sorted(rows):
        add_row(out.setdefault(ts - ts % step, {}), rows[ts])
    return out


def add_row(into: dict[str, float], row: dict[str, float]) -> None:
    """Fold one row into the row of a longer span: counts summed, maxima kept."""
    for name, value in row.items():
        if name in MAXIMA:
            into[name] = max(into.get(name, value), value)
        else:
            into[name] = into.get(name, 0) + value


def series(rows: Rows, names: Iterable[str]) -> dict[str, list[list[float]]]:
    """Per asked series: `[ts, value]` pairs, oldest first; ratios from the summed counts."""
    out: dict[str, list[list[float]]] = {}
    for name in names:
        points: list[list[float]] = []
        for ts in sorted(rows):
            row = rows[ts]
            if name in RATIOS:
                num, den = RATIOS[name]
                points.append([ts, row.get(num, 0) / row[den] if row.get(den) else 0.0])
            elif name in row:
                points.append([ts, row[name]])
        out[name] = points
    return out


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int | None:
    """`6h`, `-6h`, `90m`, `3600` (seconds) as seconds; None when it is none of these."""
    text = text.strip().lstrip("-")
    unit = _UNITS.get(text[-1:].lower(), None) if text else None
    digits = text[:-1] if unit is not None else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 12:
        return None
    return int(digits) * (unit or 1)
