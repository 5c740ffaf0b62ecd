"""Reading a sieved segment (numba-compiled): count, first and last, largest gap, twins, the primes."""
from __future__ import annotations

import itertools

import numpy as np
from numba import types
from numba.extending import intrinsic

from logtallyd.primes.wheel import BIT, WHEEL, inline, jit


def _byte_tables() -> tuple[np.ndarray, ...]:
    """Per byte value: popcount, lowest/highest set bit, in-byte twins, largest in-byte gap and where."""
    pop = np.zeros(256, np.int64)
    low = np.zeros(256, np.int64)
    high = np.zeros(256, np.int64)
    twin = np.zeros(256, np.int64)
    gap = np.zeros(256, np.int64)
    gap_at = np.zeros(256, np.int64)
    for b in range(256):
        rs = [int(WHEEL[k]) for k in range(8) if b >> k & 1]
        pop[b] = len(rs)
        if rs:
            low[b] = int(BIT[rs[0]])
            high[b] = int(BIT[rs[-1]])
        twin[b] = sum(q - p == 2 for p, q in itertools.pairwise(rs))
        for p, q in itertools.pairwise(rs):
            if q - p > gap[b]:  # strict: ties keep the first
                gap[b], gap_at[b] = q - p, p
    return pop, low, high, twin, gap, gap_at


_POP, _LOW, _HIGH, _TWIN, _GAP, _GAP_AT = _byte_tables()
_CANDIDATES = 256  # places the largest-gap search notes for its second pass, at most
# per 8-bit mask: the largest distance between two consecutive set bits (0 for fewer than two)
_MAXD = np.array([max((b - a for a, b in itertools.pairwise([k for k in range(8) if m >> k & 1])), default=0)
                  for m in range(256)], dtype=np.int64)


@intrinsic
def _popcount(typingctx, x):  # pragma: no cover - compiled
    """The set bits of a uint64, as the CPU's popcnt (numba has no popcount of its own)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@jit
def _nonzero_bytes(x):  # pragma: no cover - compiled
    """Bit j set for each nonzero byte j of the word x."""
    x |= x >> np.uint64(4)
    x |= x >> np.uint64(2)
    x |= x >> np.uint64(1)
    x &= np.uint64(0x0101010101010101)
    return np.int64((x * np.uint64(0x0102040810204080)) >> np.uint64(56))


@inline
def _scan_bytes(buf, lo, hi, prev_i, longest, cand, nc):  # pragma: no cover - compiled
    """`stats`' first pass byte by byte over buf[lo:hi] (the words' unaligned head and tail):
    the nonzero bytes' longest distance, and where one came within one of it. Returns the new
    (prev_i, longest, nc)."""
    for i in range(lo, hi):
        if buf[i] != 0:
            if i - prev_i >= longest - 1:
                if nc < _CANDIDATES:
                    cand[nc] = i
                nc += 1
            longest = max(longest, i - prev_i)
            prev_i = i
    return prev_i, longest, nc


@jit
def stats(buf, c0):  # pragma: no cover - compiled
    """(count, first, last, gap, gap_after, twins) of the set bits; -1 for none / no gap."""
    n = buf.size
    nw = n // 8
    words = buf[:8 * nw].view(np.uint64)
    count = np.uint64(0)
    twins = np.uint64(0)
    one = np.uint64(1)
    for w in range(nw):
        x = words[w]
        count += _popcount(x)
        # twins (11, 13) and (17, 19) inside a byte: bits 2&3, 4&5; (29, 31): bit 7 and the
        # next byte's bit 0
        t = (x & (x >> one) & np.uint64(0x1414141414141414)) | (
            (x >> np.uint64(7)) & (x >> np.uint64(8)) & np.uint64(0x0101010101010101))
        twins += _popcount(t)
    for w in range(nw - 1):
        twins += (words[w] >> np.uint64(63)) & words[w + 1] & one
    total = np.int64(count)
    pairs = np.int64(twins)
    prev_byte = buf[8 * nw - 1] if nw else np.uint8(0)
    for i in range(8 * nw, n):
        b = buf[i]
        total += _POP[b]
        pairs += _TWIN[b] + ((prev_byte >> 7) & b & 1)
        prev_byte = b
    # Largest gap: the gap between nonzero bytes j < i is within 30*(i-j) +- 28, and one inside
    # a byte is at most 28, so only look closely when 30*(i-j) + 28 could beat the best so far.
    i0 = 0
    while i0 < n and buf[i0] == 0:
        i0 += 1
    if i0 == n:
        return total, -1, -1, 0, -1, pairs
    first = 30 * (c0 + i0) + WHEEL[_LOW[buf[i0]]]
    gap = _GAP[buf[i0]]
    after = 30 * (c0 + i0) + _GAP_AT[buf[i0]] if gap else -1
    # Two passes: the longest distance d between nonzero bytes, then a close look only at
    # distances >= d - 1, since the best gap is >= 30*d - 28 and a distance e spans at most
    # 30*e + 28. The first goes a word at a time through the mask of its nonzero bytes (a branch
    # per byte costs more than the rest of the stats; a word with no nonzero byte is rare) and
    # notes where a distance came within one of the longest so far: since the longest only
    # grows, the second pass need look nowhere else (per 4 MiB segment: 0.29 -> 0.17 ms). With
    # too many such places, or bytes all next to each other, it goes over every word instead.
    longest = 0
    prev_i = i0
    cand = np.empty(_CANDIDATES, np.int64)
    nc = 0
    prev_i, longest, nc = _scan_bytes(buf, i0 + 1, min(n, (i0 + 8) & ~7), prev_i, longest, cand, nc)
    for w in range((i0 + 8) >> 3, nw):
        m = _nonzero_bytes(words[w])
        if m:
            d = max(8 * w + _LOW[m] - prev_i, _MAXD[m])
            if d >= longest - 1:
                if nc < _CANDIDATES:
                    cand[nc] = 8 * w
                nc += 1
                longest = max(longest, d)
            prev_i = 8 * w + _HIGH[m]
    prev_i, longest, nc = _scan_bytes(buf, max(8 * nw, min(n, (i0 + 8) & ~7)), n, prev_i, longest, cand, nc)
    last = 30 * (c0 + prev_i) + WHEEL[_HIGH[buf[prev_i]]]
    near = longest - 1
    if near >= 1 and nc <= _CANDIDATES:
        # Gaps inside a byte (<= 28) cannot be the largest once two nonzero bytes are 2 apart
        # (>= 32): only the pairs of nonzero bytes >= near apart, in order (ties keep the first).
        for t in range(nc):
            start = cand[t]
            j = start - 1  # the nonzero byte before it
            while j >= i0 and buf[j] == 0:
                j -= 1
            for i in range(start, min(n, (start & ~7) + 8)):
                b = buf[i]
                if b != 0:
                    if j >= i0 and i - j >= near:
                        prev = 30 * (c0 + j) + WHEEL[_HIGH[buf[j]]]
                        low = 30 * (c0 + i) + WHEEL[_LOW[b]]
                        if low - prev > gap:
                            gap = low - prev
                            after = prev
                    j = i
        return total, first, last, gap, after, pairs
    near = longest - 1
    prev_i = i0
    i = i0 + 1
    while i < n:
        if (i & 7) == 0 and i + 8 <= n:  # a whole word: skip it unless it holds a candidate
            m = _nonzero_bytes(words[i >> 3])
            if m == 0:
                i += 8
                continue
            if 8 * (i >> 3) + _LOW[m] - prev_i < near and _MAXD[m] < near:
                prev_i = i + _HIGH[m]
                i += 8
                continue
        b = buf[i]
        if b != 0:
            if i - prev_i >= near:
                base = 30 * (c0 + i)
                prev = 30 * (c0 + prev_i) + WHEEL[_HIGH[buf[prev_i]]]
                low = base + WHEEL[_LOW[b]]
                if low - prev > gap:
                    gap = low - prev
                    after = prev
            if _GAP[b] > gap:
                gap = _GAP[b]
                after = 30 * (c0 + i) + _GAP_AT[b]
            prev_i = i
        i += 1
    last = 30 * (c0 + prev_i) + WHEEL[_HIGH[buf[prev_i]]]
    return total, first, last, gap, after, pairs


@jit
def primes_of(buf, c0):  # pragma: no cover - compiled
    """The numbers of the set bits, ascending, as int64."""
    n = 0
    for i in range(buf.size):
        n += _POP[buf[i]]
    out = np.empty(n, np.int64)
    n = 0
    for i in range(buf.size):
        b = np.int64(buf[i])
        while b:
            out[n] = 30 * (c0 + i) + WHEEL[_LOW[b]]
            n += 1
            b &= b - 1
    return out
