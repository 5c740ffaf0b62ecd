"""The counts of one unbounded field (ip, path, ...) in one bucket: exact while its distinct values
fit a budget, a frequent-items sketch with guaranteed bounds beyond it.

Workers ship exact per-batch counts (bounded by the batch size); `Bucket.merge` folds them into
tallies with `merge()`, which is associative and commutative on the counts and stays exact for as
long as the union of keys fits `exact_keys`. Every answer is a `Row` with its lower and upper
bound: equal when exact, the sketch's guarantees otherwise.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import msgspec

from logtallyd.stats import sketches

__all__ = ["Row", "Tally", "rank_key"]


class Row(NamedTuple):
    """One value's count: the true count lies in [lower, upper]; exact when they are equal."""

    value: str
    lower: int
    upper: int


def rank_key(row: Row) -> tuple[int, int, str]:
    """Rank by the guaranteed count (lower bound), then by upper bound, then by value: a value
    whose count may only look large never ranks above one known to be large."""
    return -row.lower, -row.upper, row.value


class _Wire(msgspec.Struct, array_like=True):
    counts: dict[str, int] | None  # exact
    sketch: bytes | None  # serialized frequent-strings sketch


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Wire)


class Tally:
    """Exact `counts` (value -> n), or a frequent-strings `sketch` once they outgrew the budget."""

    __slots__ = ("counts", "sketch", "_as_sketch")

    def __init__(self, counts: dict[str, int] | None = None, sketch: Any = None) -> None:
        self.counts = None if sketch is not None else ({} if counts is None else counts)
        self.sketch = sketch
        self._as_sketch: Any = None  # this exact tally as a sketch, built once when merged into sketches

    @property
    def exact(self) -> bool:
        return self.sketch is None

    def __len__(self) -> int:
        """Distinct values held (tracked, for a sketch)."""
        return len(self.counts) if self.counts is not None else self.sketch.num_active_items

    def total(self) -> int:
        """The sum of all counts (exact in both modes)."""
        return sum(self.counts.values()) if self.counts is not None else self.sketch.total_weight

    def max_error(self) -> int:
        """upper - lower of any value: 0 when exact."""
        if self.counts is not None:
            return 0
        # An untracked value has bounds (0, the sketch's offset), the same width as every row.
        lower, upper = sketches.topk_bounds(self.sketch, "")
        return upper - lower

    def bounds(self, value: str) -> tuple[int, int]:
        if self.counts is not None:
            n = self.counts.get(value, 0)
            return n, n
        return sketches.topk_bounds(self.sketch, value)

    def tracks(self, value: str) -> bool:
        if self.counts is not None:
            return value in self.counts
        return self.sketch.get_lower_bound(value) > 0

    def rows(self, n: int | None = None) -> list[Row]:
        """The `n` heaviest values, ranked by `rank_key` (all of them when n is None)."""
        if self.counts is not None:
            rows = [Row(v, c, c) for v, c in self.counts.items()]
        else:
            rows = [Row(v, lower, upper) for v, _, lower, upper in sketches.topk_items(self.sketch)]
        rows.sort(key=rank_key)
        return rows if n is None else rows[:n]

    def merge(self, other: Tally, exact_keys: int, lg_size: int) -> None:
        """self += other: exact while the union of keys fits `exact_keys`, else a sketch with a
        map of 2**lg_size slots. `other` keeps its contents."""
        self._as_sketch = None  # the counts change: a sketch built of them before is stale
        if self.counts is not None and other.counts is not None:
            mine = self.counts
            if not mine:
                if len(other.counts) <= exact_keys:
                    mine.update(other.counts)
                else:  # straight to a sketch, from the one `other` builds for all its merges
                    self.counts, self.sketch = None, sketches.new_topk(lg_size)
                    self.sketch.merge(other.as_sketch())
                return
            for value, n in other.counts.items():
                mine[value] = mine.get(value, 0) + n
            if len(mine) <= exact_keys:
                return
            self._to_sketch(lg_size)
            return
        if self.counts is not None:
            self._to_sketch(lg_size)
        self.sketch.merge(other.sketch if other.counts is None else other.as_sketch())

    def as_sketch(self) -> Any:
        """This exact tally as a sketch large enough to hold every value (so merging it into a
        sketch is the same as adding each count); kept, as one batch merges into several buckets."""
        if self._as_sketch is None:
            sk = self._as_sketch = sketches.new_topk(_lg_holding(len(self.counts)))
            sketches.topk_update(sk, self.counts)
        return self._as_sketch

    def _to_sketch(self, lg_size: int) -> None:
        sk = sketches.new_topk(lg_size)
        sketches.topk_update(sk, self.counts)
        self.counts = None
        self.sketch = sk
        self._as_sketch = None

    def to_bytes(self) -> bytes:
        if self.counts is not None:
            return _encoder.encode(_Wire(self.counts, None))
        return _encoder.encode(_Wire(None, sketches.to_bytes(self.sketch)))

    @classmethod
    def from_bytes(cls, data: bytes) -> Tally:
        wire = _decoder.decode(data)
        if wire.sketch is not None:
            return cls(sketch=sketches.topk_from_bytes(wire.sketch))
        return cls(wire.counts or {})


def _lg_holding(n: int) -> int:
    """The smallest map (log2 slots, at least 3) whose 0.75 load holds n values without a purge."""
    return min(26, max(3, math.ceil(math.log2(max(n, 1) / 0.75))))
