"""Rolling statistics: partial aggregates merged into event-time buckets, queried per window."""
# The main process merges each worker `Partial` into per-second buckets, per-minute rollups and
# a running total. A window of W seconds is the W event seconds ending at the *anchor*: with
# `anchor = "event"` (default) the newest event second seen, so a replayed file yields the same
# windows as the same lines streamed live; with `anchor = "wall"`, the current clock second. A
# query merges the rollups of the whole minutes inside the window and the seconds at its two
# edges, so `15m` merges at most 15 + 118 buckets.
#
# Time guards: a line more than `max_future_s` ahead of the clock is `future`; a line older than
# the largest window, relative to the anchor when it is read (the newest line before it, in
# stream order, with `anchor = "event"`), is `late`: a worker judges the lines of its batch
# against each other (`Partial.behind`), the merge judges the rest against the earlier batches.
# Both are counted in `all` and reported, but never enter a window bucket nor move the anchor.
# Memory is bounded: buckets older than the largest window are dropped, and every unbounded field
# is exact up to a budget of distinct values, a fixed-size sketch beyond (its answers carry their
# bounds).
from __future__ import annotations

from typing import Any, Callable

import msgspec

from logtallyd.stats import sketches
from logtallyd.stats.config import StatsConfig
from logtallyd.stats.aggregate import DISTINCT_FIELDS, KLL_K, Bucket, Partial, Sizes, Span, add_counts, merge_totals
from logtallyd.stats.tally import Row, Tally, rank_key
from logtallyd.stats.grouping import group_rows
from logtallyd.records import LEVELS

TOP_FIELDS: tuple[str, ...] = ("ip", "user_agent", "path", "service", "host", "status", "error", "suspicious_ip")
PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
_HOT_SECONDS = 3  # seconds this close to the anchor keep live sketches (merged into often)


class _Snapshot(msgspec.Struct, array_like=True):
    started_at: float
    received: int
    parsed: int
    bytes: int
    rejected: dict[str, int]
    by_format: dict[str, int]
    notes: dict[str, int]
    late: int
    future: int
    newest: int | None
    first_second: int | None
    total: Bucket
    seconds: dict[int, Bucket]
    minutes: dict[int, Bucket]


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(_Snapshot)


def _adoptable(bucket: Bucket, sizes: Sizes) -> bool:
    """Whether `Bucket().merge(bucket, sizes)` would hold just what `bucket` holds: every tally
    exact within the budget, sketches of the sizes a merge would create, examples within bound."""
    if bucket.distinct and bucket.lg_k != sizes.lg_k:
        return False
    if bucket.lat_n and sizes.kll_k != KLL_K:
        return False
    budget = sizes.exact_keys
    for tally in bucket.tally.values():
        if not isinstance(tally, Tally) or tally.counts is None or len(tally.counts) > budget:
            return False
    return len(bucket.examples) <= 2 * max(budget, 1 << sizes.lg_size)


class Stats:
    """Everything counted since start, in buckets that windows are built from."""

    def __init__(self, config: StatsConfig, started_at: float, windows: bool = True) -> None:
        self.config = config
        # False: only "all" (`analyze` when nothing reads its windows). Lines are still judged
        # `late` and `future` against the windows they would have entered, so "all" is the same.
        self.windows = windows
        self.started_at = started_at
        self.horizon = max(config.windows.values())
        # Minute rollups, the total and query results; per-second buckets have their own budget.
        self.sizes = Sizes(config.exact_keys, config.topk_lg_size, config.kll_k, config.distinct_lg_k)
        self.second_sizes = Sizes(config.second_exact_keys, config.second_lg_size, config.kll_k,
                                  config.distinct_lg_k)
        # Accounting of every line (the issue-2 invariant: received == parsed + rejected).
        self.received = 0
        self.parsed = 0
        self.bytes = 0
        self.rejected: dict[str, int] = {}
        self.by_format: dict[str, int] = {}
        self.notes: dict[str, int] = {}
        self.late = 0
        self.future = 0
        self.newest: int | None = None  # newest accepted event second (the "event" anchor)
        self.first_second: int | None = None  # oldest accepted event second
        self.total = Bucket()  # "all": every parsed line, late and future included
        self.seconds: dict[int, Bucket] = {}
        self.minutes: dict[int, Bucket] = {}  # key: second // 60
        self._live: set[int] = set()  # seconds whose sketches are deserialized
        self._live_minutes: set[int] = set()
        self._pruned_to: int | None = None
        # Sees every partial before it is merged (and adopted, so changed): the cluster outbox.
        self.tee: Callable[[Partial], None] | None = None
        # Sees each minute rollup (minute = second // 60) as the windows let go of it: the last
        # word on that minute, which may have come and gone within one merge (history, trends).
        self.on_retire: Callable[[int, Bucket], None] | None = None

    # -- ingest -----------------------------------------------------------------------------

    def anchor(self, now: float) -> int:
        """The last second of every window at time `now`."""
        if self.config.anchor == "wall" or self.newest is None:
            return int(now)
        return self.newest

    def merge(self, partial: Partial, now: float) -> None:
        """Merge one worker result; `now` is the clock used for the future guard."""
        cfg = self.config
        late_before = self._late_before(now)
        if self.windows and partial.grain == 1:
            # The seconds late against the earlier batches join the lines late within this one,
            # before the tee: a cluster view is told which lines this node counted late.
            partial.move_behind(late_before)
        if self.tee is not None:
            self.tee(partial)
        merge_totals(self, partial)
        partial.fold()
        if not self.windows:
            self._merge_total(partial, now)
            return
        if partial.grain != 1:
            raise ValueError(f"windows are built from per-second buckets, not grain {partial.grain}")
        limit = int(now) + cfg.max_future_s
        self._merge_behind(partial)
        self._extend([s for s in partial.buckets if s <= limit])
        ref = self.anchor(now)
        lo = ref - self.horizon + 1
        sizes = self.sizes
        home: int | None = None  # the second where this batch's rejected lines are counted
        for second, bucket in partial.buckets.items():
            # HLL sketches stay bytes: merging a compact sketch twice costs less than building
            # a union of it, and an adopted second keeps them compact as stored.
            bucket.thaw(distinct=False)
            if second > limit:
                self.future += bucket.lines
                bucket.first_ts = bucket.last_ts = None  # a bad clock must not move first/last
                self.total.merge(bucket, sizes)
                continue
            self.total.merge(bucket, sizes)
            # (A second below `late_before` has gone to `partial.behind`, above.) A second below
            # `lo` was inside the windows when its lines were read and has left them with this
            # batch's newer lines: it goes in and is pruned below (its minute's row goes to
            # `on_retire` first), as it would streamed line by line.
            target = self.seconds.get(second)
            if target is None and _adoptable(bucket, self.second_sizes):
                # A second no earlier batch touched (nearly all of them when a file is read):
                # the decoded bucket becomes it, as merging it into an empty one would copy it
                # unchanged. One merge in three saved; it is only read by the merges here.
                self.seconds[second] = bucket
            else:
                if target is None:
                    target = self.seconds[second] = Bucket()
                target.merge(bucket, self.second_sizes)
            self._live.add(second)
            minute = second // 60
            rollup = self.minutes.get(minute)
            if rollup is None:
                rollup = self.minutes[minute] = Bucket()
            rollup.merge(bucket, sizes)
            self._live_minutes.add(minute)
            if second >= lo and (home is None or second > home):
                home = second
        if partial.rejected:
            self._count_rejected(partial, ref if home is None else home)
        self._prune(lo)
        self._compact(ref)

    def _late_before(self, now: float) -> int:
        """Seconds below this are late for a batch merged now: older than the largest window
        before the anchor as the earlier batches left it (none before the first line)."""
        if self.config.anchor == "wall":
            return int(now) - self.horizon + 1
        return -(1 << 62) if self.newest is None else self.newest - self.horizon + 1

    def _merge_behind(self, partial: Partial) -> None:
        """The batch's late lines (found by the worker within the batch, or moved there by
        `Partial.move_behind` against the earlier batches): in `all` and `late` only."""
        for bucket in partial.behind.values():
            bucket.thaw(distinct=False)
            self.late += bucket.lines
            self.total.merge(bucket, self.sizes)
            if bucket.first_ts is not None and bucket.last_ts is not None:
                # Accepted, as every late line is: "all" spans them, as it did when late seconds
                # stayed among the buckets (with the event anchor, a newer line came before).
                self._extend([int(bucket.first_ts), int(bucket.last_ts)])

    def _extend(self, accepted: list[int]) -> None:
        """Move the newest and oldest accepted event seconds out to those of `accepted`."""
        if accepted:
            newest = max(accepted)
            if self.newest is None or newest > self.newest:
                self.newest = newest
            oldest = min(accepted)
            if self.first_second is None or oldest < self.first_second:
                self.first_second = oldest

    def _merge_total(self, partial: Partial, now: float) -> None:
        """`merge` without windows: the same `total`, `late`, `future` and anchor, from each
        second's lines (`spans`, or the per-second buckets of a grain-1 partial)."""
        spans = partial.spans if partial.grain != 1 else {
            s: Span(b.lines, b.first_ts, b.last_ts) for s, b in partial.buckets.items()}
        limit = int(now) + self.config.max_future_s
        lo = self._late_before(now)
        self._merge_behind(partial)
        self._extend([s for s in spans if s <= limit])
        future = False
        for second, span in spans.items():
            if second > limit:
                self.future += span.lines
                future = True
            elif second < lo:
                self.late += span.lines
        total, sizes = self.total, self.sizes
        for bucket in partial.buckets.values():
            if future:
                # A bad clock must not move first/last: take them from the seconds within it.
                bucket.first_ts = bucket.last_ts = None
            total.merge(bucket, sizes)
        if future:
            firsts = [sp.first_ts for s, sp in spans.items() if s <= limit and sp.first_ts is not None]
            lasts = [sp.last_ts for s, sp in spans.items() if s <= limit and sp.last_ts is not None]
            if firsts:
                first, last = min(firsts), max(lasts)
                total.first_ts = first if total.first_ts is None else min(total.first_ts, first)
                total.last_ts = last if total.last_ts is None else max(total.last_ts, last)

    def _count_rejected(self, partial: Partial, second: int) -> None:
        # Rejected lines have no event time: count them at the batch's newest live second
        # (their neighbours in the stream), else at the anchor.
        nbytes = partial.bytes - sum(b.bytes for b in (*partial.buckets.values(), *partial.behind.values()))
        for b in (self.seconds.setdefault(second, Bucket()), self.minutes.setdefault(second // 60, Bucket())):
            add_counts(b.rejected, partial.rejected)
            b.bytes += nbytes

    def _prune(self, lo: int) -> None:
        start = self._pruned_to
        if start is not None and lo <= start:
            return
        if start is None or lo - start > len(self.seconds):
            dead = [s for s in self.seconds if s < lo]
        else:
            dead = [s for s in range(start, lo) if s in self.seconds]
        for s in dead:
            del self.seconds[s]
            self._live.discard(s)
        for m in sorted(m for m in self.minutes if m * 60 + 59 < lo):
            if self.on_retire is not None:
                self.on_retire(m, self.minutes[m])
            del self.minutes[m]
            self._live_minutes.discard(m)
        self._pruned_to = lo

    def _compact(self, ref: int) -> None:
        cold = [s for s in self._live if s < ref - _HOT_SECONDS]
        for s in cold:
            self._live.discard(s)
            bucket = self.seconds.get(s)
            if bucket is not None:
                bucket.compact()
        cold = [m for m in self._live_minutes if m < ref // 60]
        for m in cold:
            self._live_minutes.discard(m)
            rollup = self.minutes.get(m)
            if rollup is not None:
                rollup.compact()

    # -- queries ----------------------------------------------------------------------------

    def _window(self, window: str, now: float) -> tuple[int, int]:
        if not self.windows:
            raise ValueError(f"window {window!r}: these statistics keep only 'all'")
        if window not in self.config.windows:
            raise ValueError(f"unknown window {window!r}; known: all, {', '.join(self.config.windows)}")
        ref = self.anchor(now)
        return ref - self.config.windows[window] + 1, ref

    def _collect(self, lo: int, hi: int, fields: tuple[str, ...], latency: bool, distinct: bool = False) -> Bucket:
        """Merge the buckets covering seconds lo..hi: whole minutes from rollups, edges by second."""
        out = Bucket()
        sizes = self.sizes
        m0 = -(-lo // 60)  # first minute starting at or after lo
        m1 = (hi + 1) // 60 - 1  # last minute ending at or before hi
        if m0 <= m1:
            spans = [(lo, m0 * 60 - 1), ((m1 + 1) * 60, hi)]
            for m in range(m0, m1 + 1):
                rollup = self.minutes.get(m)
                if rollup is not None:
                    out.merge(rollup, sizes, fields, latency, distinct)
        else:
            spans = [(lo, hi)]
        seconds = self.seconds
        for a, b in spans:
            if b - a + 1 > len(seconds):
                keys = [s for s in seconds if a <= s <= b]
            else:
                keys = [s for s in range(a, b + 1) if s in seconds]
            for s in keys:
                out.merge(seconds[s], sizes, fields, latency, distinct)
        return out

    def report(self, window: str, now: float) -> dict[str, Any]:
        """The STATS object for `window` ("all" or a name from config)."""
        if window == "all":
            b = self.total
            rejected = dict(self.rejected)
            received, nbytes, by_format = self.received, self.bytes, dict(self.by_format)
            start, end = self.first_second, self.newest
            window_s = None
        else:
            lo, hi = self._window(window, now)
            b = self._collect(lo, hi, ("service", "host"), True, True)
            rejected = b.rejected
            received = b.lines + sum(rejected.values())
            nbytes, by_format = b.bytes, b.by_format
            start = lo if self.first_second is None else max(lo, self.first_second)
            end, window_s = hi, hi - lo + 1
        span = end - start + 1 if start is not None and end is not None and end >= start else 0
        keys = self.config.report_keys
        by_service, approx_service = _top_dict(b.counts("service"), keys)
        by_host, approx_host = _top_dict(b.counts("host"), keys)
        approximate = {name: err for name, err in (("by_service", approx_service), ("by_host", approx_host))
                       if err is not None}
        return {
            "window": window,
            "window_s": window_s,
            "anchor": self.anchor(now),
            "received": received,
            "parsed": b.lines,
            "rejected": rejected,
            "bytes": nbytes,
            "by_format": dict(sorted(by_format.items(), key=lambda kv: (-kv[1], kv[0]))),
            "notes": dict(self.notes),
            "by_level": {lv: b.by_level[lv] for lv in (*LEVELS, "OTHER") if lv in b.by_level},
            "by_service": by_service,
            "by_host": by_host,
            # name -> max error of a figure whose values are lower bounds: each true count lies
            # in [value, value + max error]. Empty when every count above is exact.
            "approximate": approximate,
            "errors": b.errors,
            "error_rate": b.errors / b.lines if b.lines else 0.0,
            "http": _http_report(b),
            "first_ts": b.first_ts,
            "last_ts": b.last_ts,
            "lines_per_s": b.lines / span if span else 0.0,
            "late": self.late,
            "future": self.future,
            "distinct": distinct_report(b),
            "distinct_rel_err": round(sketches.distinct_rel_err(self.config.distinct_lg_k), 4),
        }

    def lines_per_s(self, window: str, now: float) -> float:
        """The `lines_per_s` of `report(window)` alone, from the line counts: no field tallies or
        sketches merged (the status line asks for it every few seconds, and at start)."""
        lo, hi = self._window(window, now)
        b = self._collect(lo, hi, (), False)
        start = lo if self.first_second is None else max(lo, self.first_second)
        span = hi - start + 1 if hi >= start else 0
        return b.lines / span if span else 0.0

    def top(self, field: str, n: int, window: str, now: float) -> list[dict[str, Any]]:
        """TOP <field> [n] [window]: the n most frequent values, most frequent first."""
        if field not in TOP_FIELDS:
            raise ValueError(f"unknown field {field!r}; known: {', '.join(TOP_FIELDS)}")
        if n < 0:
            raise ValueError("n must be >= 0")
        if window == "all":
            b = self.total
        else:
            lo, hi = self._window(window, now)
            need = {"suspicious_ip": ("suspicious_ip", "ip"), "status": ()}.get(field, (field,))
            b = self._collect(lo, hi, need, False)
        if field == "status":
            total = sum(b.by_status.values())
            rows = sorted(b.by_status.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
            return [{"value": str(s), "count": c, "share": c / total} for s, c in rows]
        tally = b.counts(field)
        if tally is None:
            return []
        total = tally.total()
        if field == "error":
            # Error templates: the workers' masked templates, grouped over those the tally holds
            # (bounds summed per group), ranked like any tally.
            grouped = group_rows((r.value, r.lower, r.lower, r.upper) for r in tally.rows())
            rows = sorted((Row(g, lower, upper) for g, _, lower, upper, _ in grouped), key=rank_key)[:n]
            members = {g: m for g, _, _, _, m in grouped}
            return [_top_row(field, row, total, b, None, members[row.value]) for row in rows]
        ips = b.counts("ip") if field == "suspicious_ip" else None
        return [_top_row(field, row, total, b, ips) for row in tally.rows(n)]

    def top_errors(self) -> dict[str, int]:
        """Per field of TOP (but status, always exact): how far a since-start count may be off,
        upper - lower (0 = exact)."""
        out = {}
        for field in TOP_FIELDS:
            if field != "status":
                tally = self.total.counts(field)
                out[field] = 0 if tally is None else tally.max_error()
        return out

    # -- snapshots ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        for bucket in (self.total, *self.seconds.values(), *self.minutes.values()):
            bucket.compact()
        self._live.clear()
        self._live_minutes.clear()
        return _snapshot_encoder.encode(_Snapshot(
            self.started_at, self.received, self.parsed, self.bytes, self.rejected,
            self.by_format, self.notes, self.late, self.future, self.newest, self.first_second,
            self.total, self.seconds, self.minutes,
        ))

    @classmethod
    def from_bytes(cls, data: bytes, config: StatsConfig) -> Stats:
        snap = _snapshot_decoder.decode(data)
        stats = cls(config, snap.started_at)
        for name in ("received", "parsed", "bytes", "rejected", "by_format", "notes", "late",
                     "future", "newest", "first_second", "total", "seconds", "minutes"):
            setattr(stats, name, getattr(snap, name))
        return stats


def _top_row(field: str, row: Any, total: int, b: Bucket, ips: Tally | None,
             members: list[str] | None = None) -> dict[str, Any]:
    """One TOP row: `count` when exact; else `lower` and `upper` (the true count lies between)
    and `approximate: true`. A share is of the lower bound when approximate. `members`: the
    masked templates of a grouped error template."""
    value, lower, upper = row
    out: dict[str, Any] = {"value": value}
    if lower == upper:
        out["count"] = lower
    else:
        out.update(lower=lower, upper=upper)
    out["share"] = lower / total if total else 0.0
    if field == "error":
        # The smallest message of the group, as each template's example is its smallest.
        out["example"] = min((e for m in members or [value] if (e := b.examples.get(m)) is not None), default=None)
    elif field == "suspicious_ip":
        low, high = ips.bounds(value) if ips is not None else (0, 0)
        if low == high:
            out["requests"] = low
        else:
            out.update(requests_lower=low, requests_upper=high)
        # of this IP's responses; None when either count is approximate
        out["share"] = lower / low if low and lower == upper and low == high else None
        out["of_errors"] = lower / total if total else 0.0  # of all 4xx/5xx responses
        if low != high:
            out["approximate"] = True
    if lower != upper:
        out["approximate"] = True
    return out


def _top_dict(tally: Tally | None, n: int) -> tuple[dict[str, int], int | None]:
    """{value: count} of the n heaviest, and None when exact, else the max error (the values
    are then lower bounds)."""
    if tally is None:
        return {}, None
    counts = {row.value: row.lower for row in tally.rows(n)}
    error = tally.max_error()  # 0 for a sketch that never purged: still exact
    return counts, error or None


def distinct_report(b: Bucket) -> dict[str, dict[str, int]]:
    """Per field: the HLL estimate of distinct values and its bounds (two standard deviations)."""
    out = {}
    for name in DISTINCT_FIELDS:
        estimate, lower, upper = sketches.distinct_estimate(b.distinct_union(name))
        out[name] = {"estimate": estimate, "lower": lower, "upper": upper}
    return out


def _http_report(b: Bucket) -> dict[str, Any]:
    by_status = dict(sorted(b.by_status.items()))
    by_class: dict[str, int] = {}
    for status, n in by_status.items():
        key = f"{status // 100}xx" if status else "invalid"
        by_class[key] = by_class.get(key, 0) + n
    with_status = sum(by_status.values())
    s5xx = sum(n for s, n in by_status.items() if 500 <= s <= 599)
    latency: dict[str, Any] = {"count": b.lat_n}
    if b.lat_n:
        q = b.quantiles()
        latency.update(min=b.lat_min, max=b.lat_max, avg=b.lat_sum / b.lat_n)
        for name, rank in PERCENTILES:
            # inclusive rank: the nearest-rank percentile (p50 of 1..100 is 50)
            latency[name] = q.get_quantile(rank, True)
    else:
        latency.update(min=None, max=None, avg=None, p50=None, p95=None, p99=None)
    return {
        "requests": b.requests,
        "by_method": dict(sorted(b.by_method.items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_status": {str(s): n for s, n in by_status.items()},
        "by_class": by_class,
        "rate_5xx": s5xx / with_status if with_status else 0.0,
        "latency_ms": latency,
        "bytes_sent": b.bytes_sent,
    }


def quantile_rank_error(config: StatsConfig) -> float:
    """The stated error bound of the latency percentiles (normalized rank, 99% confidence)."""
    return sketches.quantile_rank_error(config.kll_k)

