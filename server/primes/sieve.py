"""Segmented sieve of Eratosthenes on a mod-30 wheel: the worker functions of prime jobs.

A segment is eight byte planes, one per residue r in WHEEL (numbers 30*i + r), so only 8 of
every 30 numbers take a byte. Multiples of 7..31 are pre-sieved with two periodic patterns,
the smaller sieving primes cross off with bytearray extended-slice assignment (one C loop per
prime and plane, plane by plane so the working set is one L2-sized plane), the larger ones
with one numpy scatter per group of primes that hit a plane the same number of times.
Everything here is pure and module-level so it pickles to worker processes; a segment
returns a compact `SegmentStats` tuple that merges in order.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np

WHEEL = (1, 7, 11, 13, 17, 19, 23, 29)
_R = np.array(WHEEL, dtype=np.int64)
# Multiples of these are pre-sieved by copying one periodic pattern and AND-ing a second;
# each pattern's period (in wheel columns) is the product of its primes.
PRESIEVE = (7, 11, 13, 17, 19, 23, 29, 31)
_GROUPS = ((7, 11, 13, 17), (19, 23, 29, 31))
SMALL = (2, 3, 5)  # not on the wheel; accounted for by hand
SEGMENT_BYTES = 1 << 22  # 8 planes x 512 KiB: slices sieve one plane at a time, in L2 (1 MiB/core)
# A slice assignment costs ~0.3 us of interpreter time; below ~64 hits per plane a numpy
# scatter of a whole group of primes is cheaper per hit (measured: 32/64/128 within 5%).
_SLICE_MIN_HITS = 64


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
    """Sieving primes for a job up to `hi`: primes 19..isqrt(hi) as uint32 bytes (shipped to workers)."""
    p = simple_primes(math.isqrt(hi))
    return p[p > PRESIEVE[-1]].astype(np.uint32).tobytes()


_patterns: dict[int, np.ndarray] = {}


def _pattern(g: int, columns: int) -> np.ndarray:
    """Per plane, 1 where 30*i + r has no factor in _GROUPS[g]; periodic, padded by `columns`."""
    pat = _patterns.get(g)
    period = math.prod(_GROUPS[g])
    if pat is None or pat.shape[1] < period + columns:
        i = np.arange(period + max(columns, SEGMENT_BYTES // 8), dtype=np.int64)
        pat = np.ones((8, i.size), dtype=np.uint8)
        for p in _GROUPS[g]:
            # one period of p, tiled: 30*i + r = 0 (mod p) repeats every p columns
            one = np.ones((8, p), dtype=np.uint8)
            for j, r in enumerate(WHEEL):
                one[j, (30 * np.arange(p) + r) % p == 0] = 0
            pat &= np.tile(one, (1, i.size // p + 1))[:, :i.size]
        _patterns[g] = pat
    return pat


_zeros: dict[int, bytearray] = {}  # zero sources for short slices, where allocation would show
_ZERO_CACHE_MAX = 1024


def _sieve_block(c0: int, columns: int, base: bytes) -> np.ndarray:
    """Planes (8, columns) for numbers 30*c0 .. 30*(c0+columns)-1: 1 = prime (1 itself excluded)."""
    buf = bytearray(8 * columns)
    arr = np.frombuffer(buf, dtype=np.uint8).reshape(8, columns)
    o0, o1 = (c0 % math.prod(g) for g in _GROUPS)
    np.bitwise_and(_pattern(0, columns)[:, o0:o0 + columns],
                   _pattern(1, columns)[:, o1:o1 + columns], out=arr)
    P = np.frombuffer(base, dtype=np.uint32).astype(np.int64)
    if P.size:
        # column of the first multiple of p in plane j: 30*(c0+i) + r = 0 (mod p)
        # <=> i = -(r * 30^-1 + c0) (mod p); 30^-1 mod p from p mod 30 by a table.
        inv = (_K[P % 30] * P + 1) // 30
        off = (-(_R[:, None] * inv[None, :] % P + c0 % P)) % P  # shape (8, nP)
        n_slice = int(np.searchsorted(P, columns // _SLICE_MIN_HITS, side="right"))
        if n_slice:
            zeros = _zeros
            offs = (off[:, :n_slice] + (np.arange(8, dtype=np.int64) * columns)[:, None]).tolist()
            plist = P[:n_slice].tolist()
            for j in range(8):
                stop = (j + 1) * columns
                for p, s in zip(plist, offs[j]):
                    n = (stop - 1 - s) // p + 1
                    z = zeros.get(n)
                    if z is None:
                        z = bytearray(n)
                        if n <= _ZERO_CACHE_MAX:
                            zeros[n] = z
                    buf[s:stop:p] = z
        _scatter(arr.reshape(-1), P[n_slice:], off[:, n_slice:], columns)
    if 30 * c0 <= max(PRESIEVE[-1], int(P[-1]) if P.size else 0):
        _restore(arr, c0, columns, P)
    if c0 == 0:
        arr[0, 0] = 0  # 1 is not prime
    return arr


def _scatter(flat: np.ndarray, P: np.ndarray, off: np.ndarray, columns: int) -> None:
    """Cross off multiples of the larger primes: per group with k = columns // p hits each."""
    if not P.size:
        return
    pos = off + (np.arange(8, dtype=np.int64) * columns)[:, None]
    k_of = columns // P
    # P ascending -> k descending; group boundaries where k changes
    cuts = np.flatnonzero(np.diff(k_of)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [P.size]))
    plane_end = (np.arange(1, 9, dtype=np.int64) * columns)[:, None]
    for a, b in zip(starts.tolist(), ends.tolist()):
        k = int(k_of[a])
        p = P[a:b]
        q = pos[:, a:b]
        if k:
            flat[(q[:, :, None] + p[None, :, None] * _AR[:k]).ravel()] = 0
        last = q + k * p
        flat[last[last < plane_end]] = 0


_AR = np.arange(1 << 12, dtype=np.int64)
# _K[m] = k with k*p + 1 = 0 (mod 30) for p = m (mod 30), m in WHEEL
_K = np.zeros(30, dtype=np.int64)
for _m in WHEEL:
    _K[_m] = next(k for k in range(30) if (k * _m + 1) % 30 == 0)


def _restore(arr: np.ndarray, c0: int, columns: int, P: np.ndarray) -> None:
    """Give back the sieving primes that lie in the block (each crossed itself off as p*1)."""
    lo, hi = 30 * c0, 30 * (c0 + columns)
    for p in list(PRESIEVE) + P[(P >= lo) & (P < hi)].tolist():
        if lo <= p < hi:
            arr[WHEEL.index(p % 30), p // 30 - c0] = 1


def _sieved(lo: int, hi: int, base: bytes) -> tuple[int, np.ndarray]:
    """Sieve [lo, hi] (any lo <= hi) and zero the wheel numbers outside; returns (c0, planes)."""
    c0 = lo // 30
    c1 = hi // 30
    arr = _sieve_block(c0, c1 - c0 + 1, base)
    for j, r in enumerate(WHEEL):
        if 30 * c0 + r < lo:
            arr[j, 0] = 0
        if 30 * c1 + r > hi:
            arr[j, -1] = 0
    return c0, arr


def segment_stats(lo: int, hi: int, base: bytes) -> SegmentStats:
    """Count primes in [lo, hi] with first/last, largest gap and twin pairs (a worker task)."""
    small = [p for p in SMALL if lo <= p <= hi]
    if hi < 7:
        return stats_of(small, lo, hi)
    c0, arr = _sieved(max(lo, 7), hi, base)
    count = int(np.count_nonzero(arr))
    twins = int(np.count_nonzero(arr[2] & arr[3]) + np.count_nonzero(arr[4] & arr[5])
                + np.count_nonzero(arr[7, :-1] & arr[0, 1:]))
    col = arr[0] | arr[1]
    for j in range(2, 8):
        col |= arr[j]
    cb = col.tobytes()  # 1 where the column (30 numbers) holds a prime
    c_first, c_last = cb.find(1), cb.rfind(1)
    if c_first < 0:
        res = SegmentStats(lo, hi, 0, None, None, 0, None, 0)
    else:
        first = 30 * (c0 + c_first) + WHEEL[int(np.argmax(arr[:, c_first]))]
        last = 30 * (c0 + c_last) + WHEEL[7 - int(np.argmax(arr[::-1, c_last]))]
        gap, after = _largest_gap(arr, c0, cb, c_first, c_last)
        res = SegmentStats(lo, hi, count, first, last, gap, after, twins)
    if small:
        res = merge(stats_of(small, lo, small[-1]), res._replace(lo=small[-1] + 1))
    return res


def _largest_gap(arr: np.ndarray, c0: int, cb: bytes, c_first: int,
                 c_last: int) -> tuple[int, int | None]:
    """Largest gap and where, looking closely only at the longest runs of prime-free columns."""
    # A gap between primes in columns c1 < c2 is 30*(c2-c1) + r_first(c2) - r_last(c1), within
    # +-28 of 30*(c2-c1): only runs of empty columns at least (longest - 1) long can hold the
    # largest gap. bytes.find skips through the columns in C, m at a time.
    longest, m, pos = 0, 1, c_first
    while (pos := cb.find(bytes(m), pos, c_last)) >= 0:
        end = cb.find(1, pos + m)
        longest, m, pos = end - pos, end - pos + 1, end
    if longest >= 2:
        starts = []
        m, pos = longest - 1, c_first
        while (pos := cb.find(bytes(m), pos, c_last)) >= 0:
            starts.append(pos)
            pos = cb.find(1, pos + m)
        c1 = np.array(starts, dtype=np.int64) - 1
        c2 = np.array([cb.find(1, s) for s in starts], dtype=np.int64)
        r_last = _R[7 - np.argmax(arr[::-1][:, c1], axis=0)]
        r_first = _R[np.argmax(arr[:, c2], axis=0)]
        g = 30 * (c2 - c1) + r_first - r_last
        k = int(np.argmax(g))
        return int(g[k]), 30 * (c0 + int(c1[k])) + int(r_last[k])
    cols = arr[:, c_first:c_last + 1]
    idx = np.flatnonzero(cols.T)
    nums = 30 * (c0 + c_first + idx // 8) + _R[idx % 8]
    if nums.size < 2:
        return 0, None
    g = np.diff(nums)
    k = int(np.argmax(g))
    return int(g[k]), int(nums[k])



def segment_primes(lo: int, hi: int, base: bytes) -> bytes:
    """The primes in [lo, hi] as little-endian int64 bytes (a worker task for LIST)."""
    small = [p for p in SMALL if lo <= p <= hi]
    out = np.array(small, dtype=np.int64)
    if hi >= 7:
        c0, arr = _sieved(max(lo, 7), hi, base)
        idx = np.flatnonzero(arr.T)
        out = np.concatenate((out, 30 * (c0 + idx // 8) + _R[idx % 8]))
    return out.astype("<i8").tobytes()


def segments(lo: int, hi: int, segment_bytes: int = SEGMENT_BYTES) -> Iterator[tuple[int, int]]:
    """Split [lo, hi] into segment ranges aligned to wheel columns, `segment_bytes` each (lazily)."""
    span = 30 * max(1, segment_bytes // 8)
    start = lo
    while start <= hi:
        end = min(hi, (start // span + 1) * span - 1)
        yield start, end
        start = end + 1


def segment_count(lo: int, hi: int, segment_bytes: int = SEGMENT_BYTES) -> int:
    """len(list(segments(lo, hi, segment_bytes))), without making them."""
    span = 30 * max(1, segment_bytes // 8)
    return hi // span - lo // span + 1 if hi >= lo else 0
