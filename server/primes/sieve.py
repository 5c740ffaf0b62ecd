"""Segmented sieve of Eratosthenes on a mod-30 wheel: the worker functions of prime jobs."""
# A segment is bit-packed, one byte per wheel column of 30 numbers (bit k for 30*i + WHEEL[k]),
# so only the 8 of every 30 numbers coprime to 30 take a bit. Multiples of 7..167 are
# pre-sieved by AND-ing periodic patterns; the crossing off, counting, first/last, largest gap
# and twin pairs run in numba-compiled loops (`kernels`, imported lazily: only worker processes
# load it). A task may span several segments; each is sieved on its own (cache-sized) and merged.
# Everything here is pure and module-level so it pickles to worker processes; a segment returns
# a compact `SegmentStats` tuple that merges in order.
from __future__ import annotations

import collections
import functools
import math
import os
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, NamedTuple

from logtallyd.primes.config import SEGMENT_BYTES

if TYPE_CHECKING:  # numpy is imported by the functions that run in a worker: the daemon's
    import numpy as np  # main process uses the pure ones (segments, merge) and never loads it

WHEEL = (1, 7, 11, 13, 17, 19, 23, 29)
# Multiples of these are pre-sieved by AND-ing periodic patterns, one per group; a pattern's
# period (in wheel columns) is the product of its primes. Up to 167 as primesieve does: the
# primes 37..167 would cross off 2.7 of the ~8.5 multiples per column that the primes up to
# 32768 do, at a cache miss or a loop turn each, where an AND of 12 more patterns is vectorised.
_GROUPS = ((7, 11, 13, 17), (19, 23, 29, 31), (37, 41, 43), (47, 53, 59), (61, 67, 71),
           (73, 79), (83, 89), (97, 101), (103, 107), (109, 113), (127, 131), (137, 139),
           (149, 151), (157, 163, 167))
PRESIEVE = tuple(p for g in _GROUPS for p in g)
SMALL = (2, 3, 5)  # not on the wheel; accounted for by hand


class SegmentStats(NamedTuple):
    """Primes in [lo, hi]: enough to merge with neighbours (first/last stitch gaps and twins)."""

    lo: int
    hi: int
    count: int
    first: int | None
    last: int | None
    gap: int  # largest gap between consecutive primes inside [lo, hi]; 0 if < 2 primes
    gap_after: int | None  # the prime that gap starts at (first such, if tied)
    twins: int  # pairs (p, p + 2) with both in [lo, hi]


def merge(a: SegmentStats, b: SegmentStats) -> SegmentStats:
    """Join the stats of two adjacent ranges, `a` just below `b`."""
    if b.count == 0:
        return a._replace(hi=b.hi)
    if a.count == 0:
        return b._replace(lo=a.lo)
    assert a.last is not None and b.first is not None
    gap, after = a.gap, a.gap_after
    cross = b.first - a.last
    if cross > gap:  # ties keep the earlier gap
        gap, after = cross, a.last
    if b.gap > gap:
        gap, after = b.gap, b.gap_after
    return SegmentStats(a.lo, b.hi, a.count + b.count, a.first, b.last, gap, after,
                        a.twins + b.twins + (cross == 2))


def stats_of(primes: list[int], lo: int, hi: int) -> SegmentStats:
    """Stats of an explicit sorted prime list (the reference, and for 2, 3, 5)."""
    gap, after = 0, None
    twins = 0
    for p, q in zip(primes, primes[1:]):
        if q - p > gap:
            gap, after = q - p, p
        twins += q - p == 2
    return SegmentStats(lo, hi, len(primes), primes[0] if primes else None,
                        primes[-1] if primes else None, gap, after, twins)


def simple_primes(limit: int) -> np.ndarray:
    """All primes <= limit (odd-only numpy sieve; used for base primes up to sqrt(hi))."""
    import numpy as np

    if limit < 2:
        return np.zeros(0, dtype=np.int64)
    odd = np.ones((limit - 1) // 2 + 1, dtype=bool)  # odd[i] <-> 2i + 1
    odd[0] = False
    for i in range(1, (math.isqrt(limit) - 1) // 2 + 1):
        if odd[i]:
            p = 2 * i + 1
            odd[p * p // 2::p] = False
    return np.concatenate(([2], 2 * np.flatnonzero(odd) + 1)).astype(np.int64)


def base_primes(hi: int) -> bytes:
    """Sieving primes for a job up to `hi`: primes 173..isqrt(hi) as uint32 bytes (shipped to workers)."""
    import numpy as np

    p = simple_primes(math.isqrt(hi))
    return p[p > PRESIEVE[-1]].astype(np.uint32).tobytes()


@functools.lru_cache(maxsize=1)
def _pattern_bank(block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patterns end to end, their offsets, their periods): pattern g holds packed columns (bit
    k: 30*i + WHEEL[k]) with no factor in _GROUPS[g], one period plus `block` columns long."""
    import numpy as np

    pats = []
    for group in _GROUPS:
        size = math.prod(group) + block
        pat = np.full(size, 0xFF, dtype=np.uint8)
        for p in group:
            # 30*i + r = 0 (mod p) repeats every p columns: one period of p, tiled
            i = np.arange(p, dtype=np.int64)
            one = np.zeros(p, dtype=np.uint8)
            for k, r in enumerate(WHEEL):
                one |= ((30 * i + r) % p != 0).astype(np.uint8) << k
            pat &= np.tile(one, size // p + 1)[:size]
        pats.append(pat)
    offsets = np.cumsum([0] + [p.size for p in pats[:-1]]).astype(np.uint64)
    periods = np.array([math.prod(g) for g in _GROUPS], dtype=np.uint64)
    return np.concatenate(pats), offsets, periods


def numba_cache_dir(env: Mapping[str, str]) -> str | None:
    """Where numba keeps the compiled kernels: systemd's `$CACHE_DIRECTORY` (CacheDirectory=,
    /var/cache/logtally), else `$XDG_CACHE_HOME/logtally`, else `~/.cache/logtally`, plus
    `/numba`; None leaves numba its own choice. Pure: the environment is handed in.

    Numba's default is `__pycache__` beside `kernels.py`, else a cache under $HOME; under the
    shipped systemd unit both are read-only, and every restart would compile again (seconds
    per worker, paid by the first job).
    """
    if env.get("NUMBA_CACHE_DIR"):
        return env["NUMBA_CACHE_DIR"]
    if env.get("CACHE_DIRECTORY"):
        return str(Path(env["CACHE_DIRECTORY"].split(":")[0]) / "numba")
    if env.get("XDG_CACHE_HOME"):
        return str(Path(env["XDG_CACHE_HOME"]) / "logtally" / "numba")
    if env.get("HOME"):
        return str(Path(env["HOME"]) / ".cache" / "logtally" / "numba")
    return None


def _kernels() -> types.ModuleType:
    """The compiled kernels, imported when the first prime segment runs in a process.

    A log worker that never runs a prime job never loads numba (~0.4 s and tens of MiB); the
    first segment after a restart loads the machine code from numba's on-disk cache
    (`cache=True` in `kernels`, in `numba_cache_dir`) instead of compiling it again.
    """
    if "numba" not in sys.modules and (where := numba_cache_dir(os.environ)) is not None:
        os.environ["NUMBA_CACHE_DIR"] = where  # read once, when numba is imported
    from logtallyd.primes import kernels

    return kernels


def _sieved(lo: int, hi: int, base: bytes | np.ndarray, lane: str | None = None,
            segment_bytes: int = SEGMENT_BYTES) -> tuple[int, np.ndarray]:
    """Sieve [lo, hi] (7 <= lo <= hi) as packed columns, numbers outside cleared; (c0, columns).

    With `lane`, the large primes come from this worker's buckets for the lane, where the lane's
    previous segment left them (see `lane_stats`); the buckets' cells are `segment_bytes` wide.
    """
    import numpy as np

    c0, c1 = lo // 30, hi // 30
    columns = c1 - c0 + 1
    P = np.frombuffer(base, dtype=np.uint32) if isinstance(base, bytes) else base
    kernels = _kernels()
    cols = max(1, segment_bytes // 8)
    if lane is not None and c0 // cols != c1 // cols:  # not one cell: no buckets for it
        _lanes.pop(lane, None)
        lane = None
    n = _index(P, kernels.LARGE) if lane is not None else P.size
    buf = kernels.sieve_segment(c0, columns, P[:n], *_pattern_bank(kernels.BLOCK))
    if lane is not None:
        state = _lanes.pop(lane, None)
        m = max(n, _index(P, kernels.MEDIUM * cols))
        if state is not None and state[1] == cols and 0 < c0 - state[0] <= CATCH_UP * cols:
            # the lane's last segments ran on another worker: move its primes past them (the
            # crossing off goes to a scratch buffer), ~10x cheaper than starting afresh at 1e15
            at = state[0]
            while at < c0:
                stop = min(c0, (at // cols + 1) * cols)
                scratch = np.empty(stop - at, np.uint8)
                kernels.cross_medium(scratch, at, P, n, *state[2])
                kernels.cross_large(scratch, at, P, *state[3])
                at = stop
        elif state is None or state[0] != c0 or state[1] != cols:  # first segment here
            state = (c0, cols, kernels.start_medium(P, n, m, c0), kernels.start_large(P, m, c0, cols))
        kernels.cross_medium(buf, c0, P, n, *state[2])
        kernels.cross_large(buf, c0, P, *state[3])
        _lanes[lane] = (c1 + 1, cols, state[2], state[3])
        while len(_lanes) > LANES_KEPT:
            _lanes.popitem(last=False)
    if c0 <= PRESIEVE[-1] // 30:  # the pre-sieve crossed 7..167 off and kept 1
        for p in PRESIEVE:
            if c0 <= p // 30 <= c1:
                buf[p // 30 - c0] |= 1 << WHEEL.index(p % 30)
        if c0 == 0:
            buf[0] &= 0xFE
    for k, r in enumerate(WHEEL):
        if 30 * c0 + r < lo:
            buf[0] &= ~(1 << k) & 0xFF
        if 30 * c1 + r > hi:
            buf[-1] &= ~(1 << k) & 0xFF
    return c0, buf


def _index(P: np.ndarray, x: int) -> int:
    """How many of the ascending primes P are below x."""
    import numpy as np

    # x as P's own dtype: a Python int would make numpy search an int64 copy of P (16 MB at 1e15)
    return int(np.searchsorted(P, P.dtype.type(min(x, np.iinfo(P.dtype).max)))) if x > 0 else 0


# A lane's large primes, per worker: lane -> (next column, cell width, the medium primes' next
# multiples, buckets), 8-9 bytes per prime plus a chunk per bucket (~16 MB for the 1.95 M primes
# below sqrt(1e15)). Two lanes
# run at a time; a worker keeps both, so a lane that moved to the other worker and back
# resumes. A lane's last segment drops its state; the state of a run cut short by a split stays
# until pushed out.
_lanes: collections.OrderedDict[str, tuple[int, int, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]] = (
    collections.OrderedDict())
LANES_KEPT = 2
# A worker catches a lane's buckets up over at most this many cells that ran elsewhere; past
# that, starting them afresh (a division and a bucket insertion per prime) is cheaper.
CATCH_UP = 8


def sieving_primes(hi: int) -> np.ndarray:
    """The primes 173..isqrt(hi) as uint32, computed once per worker for jobs up to `hi`."""
    return _primes_to(math.isqrt(hi))


@functools.lru_cache(maxsize=2)
def _primes_to(root: int) -> np.ndarray:
    import numpy as np

    if root < 1 << 20:
        return np.frombuffer(base_primes(root * root), dtype=np.uint32)
    primes = np.frombuffer(segment_primes(PRESIEVE[-1] + 1, root, base_primes(root)), dtype="<i8")
    return primes.astype(np.uint32)


def lane_stats(lo: int, hi: int, top: int, lane: str, last: bool = False,
               segment_bytes: int = SEGMENT_BYTES) -> SegmentStats:
    """`segment_stats` of one or more segments of a lane: consecutive segments of a job up to
    `top`, in order.

    A worker keeps the lane's large primes where they stopped (next multiples, in buckets of
    `segment_bytes` cells), so when the next segment of the lane lands on the same worker it
    skips their start computation (at 1e15 a division and a bucket insertion for each of 1.95 M
    primes, ~2x a segment's sieving). If the lane's last few segments ran on the other worker it
    moves them past those; otherwise it starts them afresh. The result is the same either way.
    After the lane's `last` segment the worker drops them.
    """
    stats = segment_stats(lo, hi, sieving_primes(top), lane, segment_bytes)
    if last:
        _lanes.pop(lane, None)
    return stats


def segment_stats(lo: int, hi: int, base: bytes | np.ndarray, lane: str | None = None,
                  segment_bytes: int = SEGMENT_BYTES) -> SegmentStats:
    """Count primes in [lo, hi] with first/last, largest gap and twin pairs (a worker task).

    Sieved one `segment_bytes` segment at a time (cache-sized; a lane's bucket cells), merged.
    """
    merged: SegmentStats | None = None
    for a, b in segments(lo, hi, segment_bytes):
        r = _piece_stats(a, b, base, lane, segment_bytes)
        merged = r if merged is None else merge(merged, r)
    assert merged is not None
    return merged


def _piece_stats(lo: int, hi: int, base: bytes | np.ndarray, lane: str | None,
                 segment_bytes: int) -> SegmentStats:
    small = [p for p in SMALL if lo <= p <= hi]
    if hi < 7:
        return stats_of(small, lo, hi)
    c0, buf = _sieved(max(lo, 7), hi, base, lane, segment_bytes)
    count, first, last, gap, after, twins = _kernels().stats(buf, c0)
    if count == 0:
        res = SegmentStats(lo, hi, 0, None, None, 0, None, 0)
    else:
        res = SegmentStats(lo, hi, int(count), int(first), int(last), int(gap),
                           int(after) if after >= 0 else None, int(twins))
    if small:
        res = merge(stats_of(small, lo, small[-1]), res._replace(lo=small[-1] + 1))
    return res


def list_primes(lo: int, hi: int, top: int) -> bytes:
    """`segment_primes` of one segment of a LIST up to `top`, with this worker's sieving primes."""
    return segment_primes(lo, hi, sieving_primes(top))


def segment_primes(lo: int, hi: int, base: bytes | np.ndarray) -> bytes:
    """The primes in [lo, hi] as little-endian int64 bytes (a worker task for LIST)."""
    import numpy as np

    small = [p for p in SMALL if lo <= p <= hi]
    out = np.array(small, dtype=np.int64)
    if hi >= 7:
        c0, buf = _sieved(max(lo, 7), hi, base)
        out = np.concatenate((out, _kernels().primes_of(buf, c0)))
    return out.astype("<i8").tobytes()


def warm_up() -> None:
    """Load (or compile, the first time) the kernels and build the patterns: pool worker start-up."""
    segment_stats(1, 10_000, base_primes(10_000))
    segment_primes(1, 100, base_primes(100))


def segments(lo: int, hi: int, segment_bytes: int = SEGMENT_BYTES) -> Iterator[tuple[int, int]]:
    """Split [lo, hi] into segment ranges aligned to wheel columns, `segment_bytes` each (lazily)."""
    span = 30 * max(1, segment_bytes // 8)
    start = lo
    while start <= hi:
        end = min(hi, (start // span + 1) * span - 1)
        yield start, end
        start = end + 1


def pieces(lo: int, hi: int, k: int) -> list[tuple[int, int]]:
    """[lo, hi] cut into k ranges (fewer if it has fewer columns) that meet at wheel columns."""
    c0, c1 = lo // 30, hi // 30
    k = max(1, min(k, c1 - c0 + 1))
    cuts = [c0 + (c1 - c0 + 1) * q // k for q in range(1, k)]
    starts = [lo] + [30 * c for c in cuts]
    ends = [30 * c - 1 for c in cuts] + [hi]
    return list(zip(starts, ends))


def segment_range(lo: int, hi: int, index: int, segment_bytes: int = SEGMENT_BYTES) -> tuple[int, int]:
    """The `index`-th range of `segments(lo, hi, segment_bytes)`, without making the others."""
    span = 30 * max(1, segment_bytes // 8)
    start = lo if index == 0 else (lo // span + index) * span
    return start, min(hi, (start // span + 1) * span - 1)


def segment_count(lo: int, hi: int, segment_bytes: int = SEGMENT_BYTES) -> int:
    """len(list(segments(lo, hi, segment_bytes))), without making them."""
    span = 30 * max(1, segment_bytes // 8)
    return hi // span - lo // span + 1 if hi >= lo else 0
