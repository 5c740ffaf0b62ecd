"""Mergeable partial aggregates: what a worker counts for one batch of parsed lines.

A `Partial` holds the batch's accounting and one `Bucket` per event second (exact counts; for
unbounded fields `Tally`s that turn into sketches past a budget, and HLL distinct counts),
counted column by column in `add_many`; it crosses the pipe as bytes and merges (associative,
commutative) into `logtallyd.stats.windows`.
"""
from __future__ import annotations

import collections
import math
import operator
import time
from typing import Any, Iterable, NamedTuple, Sequence

import msgspec

from logtallyd.stats import sketches
from logtallyd.stats.tally import Tally
from logtallyd import native
from logtallyd.records import SEVERITY_OF, Record

KLL_K = 200  # rank error 1.33% (99% confidence) per quantile query
DISTINCT_LG_K = 12  # as `[stats] distinct_lg_k`
_linecount = native.load("logtallyd.stats.linecount")  # compiled when built
count_records, error_templates = _linecount.count_records, _linecount.error_templates
behind_lines, by_second, neighbour_seconds = _linecount.behind_lines, _linecount.by_second, _linecount.neighbour_seconds

MAX_VALUE_LEN = 200  # longer values (user agents, paths, messages) are cut before sketching

# The unbounded fields, each kept in a `Tally`.
TOPK_FIELDS: tuple[str, ...] = ("ip", "user_agent", "path", "service", "host", "error", "suspicious_ip")
# The fields counted distinct (HLL), and GoAccess's unique visitors: distinct (IP, day, user
# agent) of the requests not answered 4xx.
DISTINCT_FIELDS: tuple[str, ...] = ("ip", "user_agent", "path", "host", "service", "unique_visitors")


class Sizes(NamedTuple):
    """How a merge sizes what it creates: the exact budget and sketch sizes of one kind of bucket."""

    exact_keys: int
    lg_size: int
    kll_k: int = KLL_K
    lg_k: int = DISTINCT_LG_K


# Workers keep a batch exact: its distinct values are bounded by the batch size already.
WORKER = Sizes(exact_keys=1 << 62, lg_size=13)

# RFC 9110 §9 methods plus WebDAV's and PATCH (RFC 5789); anything else is "OTHER" so a scanner
# sending random verbs cannot grow the table.
HTTP_METHODS = frozenset(
    "GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY MOVE "
    "LOCK UNLOCK SEARCH REPORT".split()
)


def add_counts(mine: dict[Any, int], theirs: dict[Any, int]) -> None:
    """mine += theirs, key by key."""
    for key, n in theirs.items():
        mine[key] = mine.get(key, 0) + n


class Pending(msgspec.Struct, array_like=True):
    """What a worker's bucket leaves to be sketched by the main process (`Bucket.settle`): a
    worker then needs no sketch library, and the values are bounded by the batch size."""

    distinct: list[str]  # tally fields whose exact keys are counted distinct (HLL)
    visitors: list[str]  # GoAccess's unique-visitor keys (ip|day|user agent)
    latencies: list[float]  # latency_ms values, for the KLL sketch


class Bucket(msgspec.Struct, array_like=True):
    """Everything counted for one span of time (a second, a minute, or since start).

    Sketch slots hold either serialized bytes (as decoded, or compacted for storage) or live
    sketch objects (after a merge); `compact()` turns them back into bytes before encoding. A
    bucket made by a worker carries its sketch inputs in `pending` until `settle()`.
    """

    lines: int = 0
    bytes: int = 0
    by_format: dict[str, int] = {}
    by_level: dict[str, int] = {}
    errors: int = 0
    rejected: dict[str, int] = {}
    requests: int = 0
    by_method: dict[str, int] = {}
    by_status: dict[int, int] = {}
    bytes_sent: int = 0
    lat_n: int = 0
    lat_sum: float = 0.0
    lat_min: float = math.inf
    lat_max: float = -math.inf
    first_ts: float | None = None
    last_ts: float | None = None
    latency: Any = None  # KLL sketch of latency_ms (bytes or object)
    tally: dict[str, Any] = {}  # field -> Tally (bytes or object)
    examples: dict[str, str] = {}  # error template -> one message
    distinct: dict[str, Any] = {}  # field -> HLL: compact sketch bytes, or a live union
    lg_k: int = DISTINCT_LG_K  # of the HLL sketches
    pending: Pending | None = None

    def settle(self) -> None:
        """Build the sketches a worker left to be built (`pending`); the same sketches, value
        for value and in the same order, as counting the lines one by one would give."""
        pending = self.pending
        if pending is None:
            return
        self.pending = None
        distinct = self.distinct
        for name in pending.distinct:
            tally = self.counts(name)
            if tally is not None and tally.counts is not None:
                # One HLL update per distinct value of the batch, not per line.
                distinct[name] = sketches.distinct_bytes_of(tally.counts, self.lg_k)
        if pending.visitors:
            distinct["unique_visitors"] = sketches.distinct_bytes_of(pending.visitors, self.lg_k)
        if pending.latencies:
            self.latency = sketches.quantiles_from_values(pending.latencies, KLL_K)

    def counts(self, name: str) -> Tally | None:
        """The live tally for `name` (deserialized and kept on first use), or None."""
        t = self.tally.get(name)
        if isinstance(t, bytes):
            t = self.tally[name] = Tally.from_bytes(t)
        return t

    def distinct_union(self, name: str) -> Any:
        """The live HLL union for `name` (deserialized and kept on first use), or None."""
        self.settle()
        d = self.distinct.get(name)
        if isinstance(d, bytes):
            d = self.distinct[name] = sketches.distinct_from_bytes(d, self.lg_k)
        return d

    def quantiles(self) -> Any:
        self.settle()
        q = self.latency
        if isinstance(q, bytes):
            q = self.latency = sketches.quantiles_from_bytes(q)
        return q

    def thaw(self, distinct: bool = True) -> None:
        """Deserialize every sketch once (before merging this bucket into several others);
        `distinct=False` leaves the HLL sketches as bytes (a union reads them as cheaply)."""
        self.settle()
        self.quantiles()
        for name in self.tally:
            self.counts(name)
        if distinct:
            for name in self.distinct:
                self.distinct_union(name)

    def merge(
        self,
        other: Bucket,
        sizes: Sizes = WORKER,
        fields: tuple[str, ...] | None = None,
        latency: bool = True,
        distinct: bool = True,
    ) -> None:
        """Add `other` into this bucket; `fields`/`latency`/`distinct` restrict which tallies and
        sketches are merged (queries merge only what they report). `other` is only settled: its
        stored bytes are read without being kept deserialized."""
        other.settle()
        self.settle()
        self.lines += other.lines
        self.bytes += other.bytes
        self.errors += other.errors
        self.requests += other.requests
        self.bytes_sent += other.bytes_sent
        add_counts(self.by_format, other.by_format)
        if other.by_level:
            add_counts(self.by_level, other.by_level)
        if other.rejected:
            add_counts(self.rejected, other.rejected)
        if other.by_method:
            add_counts(self.by_method, other.by_method)
        if other.by_status:
            add_counts(self.by_status, other.by_status)
        if other.first_ts is not None:
            if self.first_ts is None or other.first_ts < self.first_ts:
                self.first_ts = other.first_ts
            if self.last_ts is None or other.last_ts > self.last_ts:  # type: ignore[operator]
                self.last_ts = other.last_ts
        if other.lat_n:
            self.lat_n += other.lat_n
            self.lat_sum += other.lat_sum
            self.lat_min = min(self.lat_min, other.lat_min)
            self.lat_max = max(self.lat_max, other.lat_max)
            if latency:
                theirs = other.latency
                if isinstance(theirs, bytes):
                    theirs = sketches.quantiles_from_bytes(theirs)
                mine = self.quantiles()
                if mine is None:
                    mine = self.latency = sketches.new_quantiles(sizes.kll_k)
                mine.merge(theirs)
        for name, theirs in other.tally.items():
            if fields is not None and name not in fields:
                continue
            if isinstance(theirs, bytes):
                theirs = Tally.from_bytes(theirs)
            mine = self.counts(name)
            if mine is None:
                mine = self.tally[name] = Tally()
            mine.merge(theirs, sizes.exact_keys, sizes.lg_size)
        if distinct and other.distinct:
            if not self.distinct:
                self.lg_k = sizes.lg_k
            for name, theirs in other.distinct.items():
                mine = self.distinct_union(name)
                if mine is None:
                    mine = self.distinct[name] = sketches.new_distinct(self.lg_k)
                if isinstance(theirs, bytes):
                    sketches.distinct_merge(mine, theirs)
                else:
                    sketches.distinct_merge_union(mine, theirs)
        if other.examples and (fields is None or "error" in fields):
            examples = self.examples
            for template, message in other.examples.items():
                # The smallest message is the example: the choice must not depend on merge order.
                current = examples.get(template)
                if current is None or message < current:
                    examples[template] = message
            if len(examples) > 2 * max(sizes.exact_keys, 1 << sizes.lg_size):
                # Keep examples only for templates the tally still tracks (bounded memory).
                errors = self.counts("error")
                self.examples = {t: m for t, m in examples.items() if errors is not None and errors.tracks(t)}

    def compact(self) -> None:
        """Serialize live sketches (about 4x smaller than the objects) for storage or encoding."""
        if self.latency is not None and not isinstance(self.latency, bytes):
            self.latency = sketches.to_bytes(self.latency)
        for name, t in self.tally.items():
            if not isinstance(t, bytes):
                self.tally[name] = t.to_bytes()
        for name, d in self.distinct.items():
            if not isinstance(d, bytes):
                self.distinct[name] = sketches.distinct_to_bytes(d)


class _Scratch:
    """One event second of a batch, before folding: plain counters and value lists."""

    __slots__ = (
        "lines", "nbytes", "by_format", "by_level", "errors", "requests", "by_method",
        "by_status", "bytes_sent", "ts", "latencies", "ips", "user_agents", "paths",
        "services", "hosts", "bad_ips", "templates", "examples", "visitors",
    )

    def __init__(self) -> None:
        self.lines = 0
        self.nbytes = 0
        self.by_format: dict[str, int] = {}
        self.by_level: dict[str, int] = {}
        self.errors = 0
        self.requests = 0
        self.by_method: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        self.bytes_sent = 0
        self.ts: list[float] = []
        self.latencies: list[float] = []
        # value -> count, in order of first occurrence (the order the sketches are fed in)
        self.ips: dict[str, int] = {}
        self.user_agents: dict[str, int] = {}
        self.paths: dict[str, int] = {}
        self.services: dict[str, int] = {}
        self.hosts: dict[str, int] = {}
        self.bad_ips: dict[str, int] = {}
        self.templates: dict[str, int] = {}
        self.examples: dict[str, str] = {}
        self.visitors: set[tuple[str, str | None]] = set()  # (ip, user agent), not answered 4xx

    def fold(self, second: int, lg_k: int) -> Bucket:
        by_level: dict[str, int] = {}
        for level, n in self.by_level.items():
            key = level if level in SEVERITY_OF else "OTHER"
            by_level[key] = by_level.get(key, 0) + n
        by_method: dict[str, int] = {}
        for method, n in self.by_method.items():
            key = method.upper()
            key = key if key in HTTP_METHODS else "OTHER"
            by_method[key] = by_method.get(key, 0) + n
        by_status: dict[int, int] = {}
        for status, n in self.by_status.items():
            key = status if 100 <= status <= 599 else 0  # 0: not a valid HTTP status
            by_status[key] = by_status.get(key, 0) + n
        tally: dict[str, Any] = {}
        distinct: list[str] = []
        for name, counts in (
            ("ip", self.ips), ("user_agent", self.user_agents), ("path", self.paths),
            ("service", self.services), ("host", self.hosts), ("error", self.templates),
            ("suspicious_ip", self.bad_ips),
        ):
            if counts:
                counts = _cut_counts(counts)
                tally[name] = Tally(counts)
                if name in DISTINCT_FIELDS:
                    distinct.append(name)
        visitors: list[str] = []
        if self.visitors:
            day = time.strftime("%Y-%m-%d", time.gmtime(second - second % 86400))
            visitors = [f"{ip}|{day}|{agent or ''}" for ip, agent in self.visitors]
        lat = self.latencies
        bucket = Bucket(
            lines=self.lines, bytes=self.nbytes, by_format=self.by_format, by_level=by_level,
            errors=self.errors, requests=self.requests, by_method=by_method, by_status=by_status,
            bytes_sent=self.bytes_sent, tally=tally, examples=self.examples, lg_k=lg_k,
            pending=Pending(distinct, visitors, lat) if distinct or visitors or lat else None,
        )
        if self.ts:
            bucket.first_ts = min(self.ts)
            bucket.last_ts = max(self.ts)
        if lat:
            bucket.lat_n = len(lat)
            bucket.lat_sum = math.fsum(lat)
            bucket.lat_min = min(lat)
            bucket.lat_max = max(lat)
        return bucket


def _cut_counts(counts: dict[str, int]) -> dict[str, int]:
    if max(map(len, counts)) > MAX_VALUE_LEN:  # (only called with values)
        cut: dict[str, int] = {}
        for v, n in counts.items():
            v = v[:MAX_VALUE_LEN]
            cut[v] = cut.get(v, 0) + n
        return cut
    return counts


def _count(counts: dict[Any, int], values: Iterable[Any]) -> None:
    """counts += occurrences of each value but None, new keys in order of first occurrence."""
    # Counting straight into `counts` with Counter.update's own C loop: a Counter built per
    # call cost more than the counting in a second of a replayed file (~10 lines, ten calls).
    # `counts` never holds None, so dropping it afterwards drops exactly what was counted now.
    _count_elements(counts, values)
    counts.pop(None, None)


_count_elements = getattr(collections, "_count_elements", None) or (
    lambda counts, values: add_counts(counts, collections.Counter(values)))


_FORMAT = operator.attrgetter("format")
_TS = operator.attrgetter("ts")
_HOST = operator.attrgetter("host")


Groups = list[tuple[int, "list[int] | None"]]


class Span(msgspec.Struct, array_like=True):
    """One event second of a `Partial` whose buckets span more than a second: its lines and the
    range of their timestamps, what a `Stats` without windows needs to count `late` and
    `future` lines exactly as the windows would."""

    lines: int = 0
    first_ts: float | None = None
    last_ts: float | None = None


class Partial(msgspec.Struct, dict=True):
    """A batch's accounting plus its buckets (`buckets`: start second -> Bucket), one per event
    second, or one per `grain` seconds (a UTC day: `analyze` when nothing reads its windows)
    with each second's lines in `spans`."""

    received: int = 0
    parsed: int = 0
    bytes: int = 0
    rejected: dict[str, int] = {}
    by_format: dict[str, int] = {}
    notes: dict[str, int] = {}  # counted facts that are not rejections (e.g. invalid_utf8 kept)
    buckets: dict[int, Bucket] = {}
    lg_k: int = DISTINCT_LG_K  # of the HLL distinct counts (`[stats] distinct_lg_k`)
    # Seconds one bucket spans: 1, or 86400 (one bucket per UTC day, so unique visitors, whose
    # key holds the day, count as per second). With 86400, `spans` holds every second's lines.
    grain: int = 1
    spans: dict[int, Span] = {}
    # The lines late within the batch (`behind_lines`), in buckets of their own (one per UTC day:
    # the unique visitors' key holds it): they count in the totals and as `late`, never in a
    # window, whatever the batch's newest line was.
    behind: dict[int, Bucket] = {}

    def __post_init__(self) -> None:
        self._scratch: dict[int, _Scratch] = {}

    def add_many(
        self,
        records: Sequence[Record],
        sizes: Sequence[int],
        seconds: Sequence[int],
        templates: Sequence[str | None],
        groups: Groups | None = None,
        behind: Sequence[int] = (),
    ) -> None:
        """Count parsed lines (aligned lists: record, size in bytes, event second, and the error
        template or None) at their event seconds, each field pulled out of the records with
        C-level `map`/`Counter` calls. `groups` is `by_second(seconds)` when the caller has it.
        `behind`: the positions (ascending) of lines late within the batch (`behind_lines`),
        counted into `self.behind` instead."""
        if behind:
            self._add_behind(records, sizes, seconds, templates, behind)
            keep = sorted(set(range(len(records))).difference(behind))
            records = list(map(records.__getitem__, keep))
            sizes = list(map(sizes.__getitem__, keep))
            seconds = list(map(seconds.__getitem__, keep))
            templates = list(map(templates.__getitem__, keep))
            groups = None
        n = len(records)
        if not n:
            return
        self.received += n
        self.parsed += n
        self.bytes += sum(sizes)
        _count(self.by_format, map(_FORMAT, records))
        if groups is None:
            groups = by_second(seconds)
        grain = self.grain
        if grain > 1:
            # One bucket per day of the batch (one, nearly always): the per-second costs of a
            # replayed file (~10 lines a second) go; what is left per second is its span.
            self._add_spans(records, groups)
            groups = by_second([s - s % grain for s in seconds])
        for second, positions in groups:
            if positions is None:
                recs, nbytes, tmpl = records, sum(sizes), templates
            else:
                recs = list(map(records.__getitem__, positions))
                nbytes = sum(map(sizes.__getitem__, positions))
                tmpl = list(map(templates.__getitem__, positions))
            self._add_second(second, recs, nbytes, tmpl)

    def _add_behind(self, records: Sequence[Record], sizes: Sequence[int], seconds: Sequence[int],
                    templates: Sequence[str | None], behind: Sequence[int]) -> None:
        side = Partial(lg_k=self.lg_k, grain=86400)
        side.add_many(list(map(records.__getitem__, behind)), list(map(sizes.__getitem__, behind)),
                      list(map(seconds.__getitem__, behind)), list(map(templates.__getitem__, behind)))
        side.fold()
        merge_totals(self, side)
        for day, bucket in side.buckets.items():
            self._file_behind(day, bucket)

    def move_behind(self, before: int) -> None:
        """Count the buckets of seconds before `before` as late lines (`behind`)."""
        self.fold()
        for second in [s for s in self.buckets if s < before]:
            self._file_behind(second - second % 86400, self.buckets.pop(second))

    def _file_behind(self, day: int, bucket: Bucket) -> None:
        mine = self.behind.get(day)
        if mine is None:
            self.behind[day] = bucket  # taken over, as `Stats.merge` adopts a second's bucket
        else:
            mine.merge(bucket)

    def _add_spans(self, records: Sequence[Record], groups: Groups) -> None:
        spans = self.spans
        stamps = list(map(_TS, records))
        for second, positions in groups:
            ts = stamps if positions is None else list(map(stamps.__getitem__, positions))
            span = spans.get(second)
            if span is None:
                span = spans[second] = Span()
            span.lines += len(ts)
            if None in ts:
                ts = [t for t in ts if t is not None]
            if ts:
                first, last = min(ts), max(ts)
                if span.first_ts is None or first < span.first_ts:
                    span.first_ts = first
                if span.last_ts is None or last > span.last_ts:
                    span.last_ts = last

    def _add_second(
        self, second: int, recs: Sequence[Record], nbytes: int, templates: Sequence[str | None]
    ) -> None:
        s = self._scratch.get(second)
        if s is None:
            s = self._scratch[second] = _Scratch()
        s.lines += len(recs)
        s.nbytes += nbytes
        count_records(s, recs)  # every per-line counter, one pass (compiled when built)
        if templates.count(None) != len(templates):
            counts, examples = s.templates, s.examples
            for record, template in zip(recs, templates):
                if template is None:
                    continue
                counts[template] = counts.get(template, 0) + 1
                example = examples.get(template)
                message = record.message[:MAX_VALUE_LEN]
                if example is None or message < example:
                    examples[template] = message

    def reject(self, reason: str, nbytes: int) -> None:
        self.received += 1
        self.bytes += nbytes
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def note(self, name: str, n: int = 1) -> None:
        self.notes[name] = self.notes.get(name, 0) + n

    def fold(self) -> None:
        """Turn the scratch lists of `add_many()` into buckets (sketches built once per batch)."""
        if not self._scratch:
            return
        buckets = self.buckets
        for second, scratch in self._scratch.items():
            bucket = scratch.fold(second, self.lg_k)
            if second in buckets:
                buckets[second].merge(bucket)
            else:
                buckets[second] = bucket
        self._scratch = {}

    def merge(self, other: Partial) -> None:
        if other.grain != self.grain:
            raise ValueError(f"cannot merge a partial of grain {other.grain} into one of grain {self.grain}")
        merge_totals(self, other)
        self.fold()
        other.fold()
        for second, theirs in other.spans.items():
            span = self.spans.setdefault(second, Span())
            span.lines += theirs.lines
            for ts in (theirs.first_ts, theirs.last_ts):
                if ts is not None:
                    span.first_ts = ts if span.first_ts is None else min(span.first_ts, ts)
                    span.last_ts = ts if span.last_ts is None else max(span.last_ts, ts)
        for second, bucket in other.buckets.items():
            mine = self.buckets.get(second)
            if mine is None:
                mine = self.buckets[second] = Bucket()
            mine.merge(bucket)
        for day, bucket in other.behind.items():
            mine = self.behind.get(day)
            if mine is None:
                mine = self.behind[day] = Bucket()
            mine.merge(bucket)

    def to_bytes(self) -> bytes:
        self.fold()
        for bucket in self.buckets.values():
            bucket.compact()
        for bucket in self.behind.values():
            bucket.compact()
        return _encoder.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Partial:
        return _decoder.decode(data)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Partial)


def merge_totals(into: Any, other: Partial) -> None:
    """Add the accounting totals (received, parsed, bytes, rejected, by_format, notes) of
    `other` to `into`: a Partial, or the Stats that keeps the totals since start."""
    into.received += other.received
    into.parsed += other.parsed
    into.bytes += other.bytes
    add_counts(into.rejected, other.rejected)
    add_counts(into.by_format, other.by_format)
    add_counts(into.notes, other.notes)
