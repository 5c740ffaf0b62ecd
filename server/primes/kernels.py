"""Compiled (numba) inner loops of the segmented sieve: bit-packed mod-30 wheel, one byte per 30
numbers.
"""
# Byte i of a segment starting at wheel column c0 holds the numbers 30*(c0+i) + r for r in
# WHEEL, bit k for WHEEL[k]. A prime p >= 173 crosses off its multiples p*q with q coprime to 30
# as eight arithmetic progressions, one per residue of q: each has a fixed bit and a stride of p
# bytes, so the inner loop is a single AND-and-add. Primes below `_BLOCK` sieve one L1-sized
# block at a time (pattern copy for 7..167 first, then crossing off, while the block is in L1).
# In a lane (consecutive segments of a job on one worker) the larger ones keep their next
# multiples between segments: a flat array for those that hit every segment (`cross_medium`),
# buckets per segment for the rest (`cross_large`); outside a lane they go over the whole
# segment (L2) in one pass.
#
# Imported by `sieve` when the first prime segment runs in a process: `import numba` costs ~0.4
# s and tens of MiB, which the event loop and the log workers should not pay. `cache=True`
# stores the machine code in `sieve.numba_cache_dir` (NUMBA_CACHE_DIR), so a worker loads it in
# milliseconds after the first compile, also after a restart.
from __future__ import annotations

import itertools

import numba
import numpy as np

WHEEL = np.array((1, 7, 11, 13, 17, 19, 23, 29), dtype=np.int64)
# bit index of residue r mod 30 (r coprime to 30), -1 elsewhere
_BIT = np.full(30, -1, dtype=np.int64)
_BIT[WHEEL] = np.arange(8)
# Primes below this many bytes sieve block by block in L1 (64 KiB L1d here; 32 KiB leaves room
# for the pattern reads). Measured per 4 MiB segment near 1e10 with 16/32/64/128 KiB blocks:
# 2.98/2.86/3.00/3.05 ms.
_BLOCK = 1 << 15


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
            low[b] = int(_BIT[rs[0]])
            high[b] = int(_BIT[rs[-1]])
        twin[b] = sum(q - p == 2 for p, q in itertools.pairwise(rs))
        for p, q in itertools.pairwise(rs):
            if q - p > gap[b]:  # strict: ties keep the first
                gap[b], gap_at[b] = q - p, p
    return pop, low, high, twin, gap, gap_at


_POP, _LOW, _HIGH, _TWIN, _GAP, _GAP_AT = _byte_tables()
# per 8-bit mask: the largest distance between two consecutive set bits (0 for fewer than two)
_MAXD = np.array([max((b - a for a, b in itertools.pairwise([k for k in range(8) if m >> k & 1])), default=0)
                  for m in range(256)], dtype=np.int64)


def _jit(fn):
    """njit with an on-disk cache; without one if no cache directory is usable."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba: "no locator available" (read-only tree and home)
        return numba.njit(nogil=True)(fn)


@_jit
def sieve_segment(c0, ncols, P, pats, offs, periods):  # pragma: no cover - compiled
    """Bytes for columns c0 .. c0+ncols-1: bit set = no prime factor among 7..167 and P.

    P: sieving primes (>= 173, ascending, uint32). pats: the pre-sieve patterns end to end,
    pattern g at offs[g] with period periods[g] bytes, each one period plus _BLOCK bytes long.
    The primes 7..167 and 1 come out wrong (crossed / kept); the caller fixes the first six
    columns. Each prime starts at p*p, so the sieving primes themselves stay.
    """
    buf = np.empty(ncols, np.uint8)
    seg_lo = 30 * c0
    seg_hi = 30 * (c0 + ncols)
    # Indices are uint64 below: numba cannot prove a signed index >= 0 and adds a wraparound
    # check per access, which blocks vectorising the copy (45x) and slows crossing off (~30%).
    n_small = 0
    while n_small < P.size and P[n_small] < _BLOCK:
        n_small += 1
    pos = np.empty(8 * n_small, np.uint64)  # next byte of each small-prime progression
    mask = np.empty(8 * n_small, np.uint8)
    for j in range(n_small):
        p = np.int64(P[j])
        start = max(p * p, seg_lo)
        q0 = (start + p - 1) // p
        for k in range(8):
            q = q0 + (WHEEL[k] - q0) % 30
            pos[8 * j + k] = (p * q) // 30 - c0
            mask[8 * j + k] = ~np.uint8(1 << _BIT[(p * WHEEL[k]) % 30])
    for b0 in range(0, ncols, _BLOCK):
        b1 = min(b0 + _BLOCK, ncols)
        w = np.uint64(b1 - b0)
        blk = buf[b0:b1]
        s0 = offs[0] + np.uint64(c0 + b0) % periods[0]
        s1 = offs[1] + np.uint64(c0 + b0) % periods[1]
        a0 = pats[s0:s0 + w]
        a1 = pats[s1:s1 + w]
        for i in range(w):
            blk[i] = a0[i] & a1[i]
        for g in range(2, offs.size):
            sg = offs[g] + np.uint64(c0 + b0) % periods[g]
            ag = pats[sg:sg + w]
            for i in range(w):
                blk[i] &= ag[i]
        end = np.uint64(b1)
        for j in range(n_small):
            p = np.uint64(P[j])
            for k in range(8):
                i = pos[8 * j + k]
                m = mask[8 * j + k]
                while i < end:
                    buf[i] &= m
                    i += p
                pos[8 * j + k] = i
    end = np.uint64(ncols)
    for j in range(n_small, P.size):
        p = np.int64(P[j])
        if p * p >= seg_hi:
            break
        start = max(p * p, seg_lo)
        q0 = (start + p - 1) // p
        pu = np.uint64(p)
        for k in range(8):
            q = q0 + (WHEEL[k] - q0) % 30
            i = np.uint64((p * q) // 30 - c0)
            m = ~np.uint8(1 << _BIT[(p * WHEEL[k]) % 30])
            while i < end:
                buf[i] &= m
                i += pu
    return buf


# Large primes (>= LARGE) go through a bucket sieve in a lane, as primesieve's EratBig: the
# columns are cut into cells of `cols` (one job segment each), and each large prime sits in the
# bucket of the cell that holds its next multiple, so a segment only touches the primes that hit
# it (at 1e15 most of the 1.95 M primes skip a 4 MiB segment; scanning all of them cost ~4x the
# crossing off). A multiple p*q (q coprime to 30) is a column and the wheel index k of q; the
# next one is q + _DQ[k], at column col + (p // 30) * _DQ[k] + _CORR[8*i + k] with bit
# _MBIT[8*i + k], where i is the wheel index of p mod 30.
#
# A bucket entry is one int64: p // 30 << 35 | i << 32 | (column - cell start) << 3 | k, so the
# crossing loop never reads the prime list (a random read per entry). Buckets are linked lists
# of _CHUNK-entry chunks from one pool; bucket g & (nb - 1) holds cell g, nb a power of two
# above the largest step in cells. `meta`: [free chunks, primes activated, cols, nb].
_DQ = np.array((6, 4, 2, 4, 2, 4, 6, 2), dtype=np.int64)
_MBIT = np.array([_BIT[(int(a) * int(b)) % 30] for a in WHEEL for b in WHEEL], dtype=np.int64)
_UNSET = np.array([~(1 << int(m)) & 0xFF for m in _MBIT], dtype=np.uint8)
_CORR = np.array([((int(a) * int(b)) % 30 + int(a) * int(d)) // 30
                  for a in WHEEL for b, d in zip(WHEEL, _DQ)], dtype=np.int64)
# wheel index of the first residue >= r coprime to 30, for r = 0..29
_NEXT_K = np.array([int(np.searchsorted(WHEEL, r)) for r in range(30)], dtype=np.int64)
LARGE = _BLOCK  # primes from here on go through `cross_medium` or the buckets in a lane
# Primes below MEDIUM cells' worth of columns hit a cell 8 / MEDIUM times or more on average:
# they keep their next multiple in a flat array and are looked at in every segment, which costs
# less than taking them out of a bucket and putting them back. Per 4 MiB segment at 1e15 (CPU
# time, medians of 3): MEDIUM 0 / 4 / 16 -> 18.6 / 18.3 / 17.5 ms.
MEDIUM = 16
_CHUNK = 1 << 11
_COLUMN = (1 << 32) - 8  # the (column - cell start) << 3 bits of an entry


@_jit
def _push(ent, nxt, fill, head, free, meta, b, v):  # pragma: no cover - compiled
    h = head[b]
    if h < 0 or fill[h] == _CHUNK:
        meta[0] -= 1
        c = free[meta[0]]
        nxt[c] = h
        fill[c] = 0
        head[b] = c
        h = c
    ent[h * _CHUNK + fill[h]] = v
    fill[h] += 1


@_jit
def start_large(P, j0, c0, cols):  # pragma: no cover - compiled
    """Empty buckets for P[j0:] (cells of `cols` columns), holding the primes with p*p below
    column c0 at their first multiple p*q >= 30*c0, q coprime to 30; the others join later
    (`cross_large`), at p*p. Returns (entries, chunk links, chunk fills, bucket heads, free
    chunks, meta)."""
    n = P.size - j0
    top = np.int64(P[P.size - 1]) if n else 0
    cells = ((top // 30) * 6 + 6) // cols + 2  # the longest step, in cells, plus one
    nb = 1
    while nb <= cells:
        nb *= 2
    nchunks = n // _CHUNK + nb + 4
    ent = np.empty(nchunks * _CHUNK, np.int64)
    nxt = np.empty(nchunks, np.int64)
    fill = np.zeros(nchunks, np.int64)
    head = np.full(nb, -1, np.int64)
    free = np.arange(nchunks - 1, -1, -1).astype(np.int64)
    meta = np.array((nchunks, j0, cols, nb), np.int64)
    lo = 30 * c0
    j = j0
    while j < P.size and np.int64(P[j]) * np.int64(P[j]) < lo:
        p = np.int64(P[j])
        q0 = (lo + p - 1) // p
        r = q0 % 30
        k = _NEXT_K[r]
        col = (p * (q0 - r + WHEEL[k])) // 30
        g = col // cols
        v = (p // 30) << 35 | _BIT[p % 30] << 32 | (col - g * cols) << 3 | k
        _push(ent, nxt, fill, head, free, meta, g & (nb - 1), v)
        j += 1
    meta[1] = j
    return ent, nxt, fill, head, free, meta


@_jit
def cross_large(buf, c0, P, ent, nxt, fill, head, free, meta):  # pragma: no cover - compiled
    """Cross off the bucketed primes' multiples in `buf` (columns c0.., inside one cell, right
    after the lane's previous segment), moving each to the bucket of its next multiple."""
    cols = meta[2]
    mask = meta[3] - 1
    end = c0 + buf.size
    g = c0 // cols
    base = g * cols
    j = meta[1]
    while j < P.size and (np.int64(P[j]) * np.int64(P[j])) // 30 < end:  # joins at p*p
        p = np.int64(P[j])
        col = (p * p) // 30
        v = (p // 30) << 35 | _BIT[p % 30] << 32 | (col - base) << 3 | _BIT[p % 30]
        _push(ent, nxt, fill, head, free, meta, g & mask, v)
        j += 1
    meta[1] = j
    b = g & mask
    h = head[b]
    head[b] = -1  # entries left in this cell (past `end`) start a new list here
    n_free = meta[0]
    inv = 1.0 / cols
    while h >= 0:
        at = h * _CHUNK
        for e in range(at, at + fill[h]):
            v = ent[e]
            a = v >> 35
            i = 8 * ((v >> 32) & 7)
            k = v & 7
            col = base + ((v & _COLUMN) >> 3)
            while col < end:
                buf[np.uint64(col - c0)] &= _UNSET[i + k]
                col += a * _DQ[k] + _CORR[i + k]
                k = (k + 1) & 7
            if col < base + cols:  # a segment that ends inside its cell
                g2 = g
            elif col < base + 2 * cols:  # most of them: no division
                g2 = g + 1
            else:  # a 64-bit division costs more than the rest of the move: by a reciprocal
                g2 = g + np.int64((col - base) * inv)
                g2 += (col - g2 * cols >= cols) - (col < g2 * cols)
            # `_push`, written out: a call passes its arrays with a reference count each
            # (atomic increments), 20x the cost of the crossing off here
            t = head[g2 & mask]
            if t < 0 or fill[t] == _CHUNK:
                n_free -= 1
                c = free[n_free]
                nxt[c] = t
                fill[c] = 0
                head[g2 & mask] = c
                t = c
            ent[t * _CHUNK + fill[t]] = (v >> 32) << 32 | (col - g2 * cols) << 3 | k
            fill[t] += 1
        h2 = nxt[h]
        free[n_free] = h
        n_free += 1
        h = h2
    meta[0] = n_free
    return 0


@_jit
def start_medium(P, j0, j1, c0):  # pragma: no cover - compiled
    """(column, wheel index) of the first multiple p*q >= max(p*p, 30*c0), q coprime to 30, of each P[j0:j1]."""
    n = j1 - j0
    col = np.empty(n, np.int64)
    kk = np.empty(n, np.uint8)
    lo = 30 * c0
    for j in range(n):
        p = np.int64(P[j0 + j])
        start = max(p * p, lo)
        q0 = (start + p - 1) // p
        r = q0 % 30
        k = _NEXT_K[r]
        q = q0 - r + WHEEL[k]
        col[j] = (p * q) // 30
        kk[j] = k
    return col, kk


@_jit
def cross_medium(buf, c0, P, j0, col, kk):  # pragma: no cover - compiled
    """Cross off the multiples of P[j0:j0 + col.size] in `buf` (columns c0..), advancing `col`/`kk` past it."""
    end = c0 + buf.size
    for j in range(col.size):
        c = col[j]
        if c >= end:
            continue
        p = np.int64(P[j0 + j])
        i = 8 * _BIT[p % 30]
        a = p // 30
        k = np.int64(kk[j])
        while c < end:
            buf[np.uint64(c - c0)] &= _UNSET[i + k]
            c += a * _DQ[k] + _CORR[i + k]
            k = (k + 1) & 7
        col[j] = c
        kk[j] = k


@_jit
def _popcount(x):  # pragma: no cover - compiled
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@_jit
def _nonzero_bytes(x):  # pragma: no cover - compiled
    """Bit j set for each nonzero byte j of the word x."""
    x |= x >> np.uint64(4)
    x |= x >> np.uint64(2)
    x |= x >> np.uint64(1)
    x &= np.uint64(0x0101010101010101)
    return np.int64((x * np.uint64(0x0102040810204080)) >> np.uint64(56))


@_jit
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
    # 30*e + 28. Both go a word at a time through the mask of its nonzero bytes (a branch per
    # byte costs more than the rest of the stats); a word with no nonzero byte is rare.
    longest = 0
    prev_i = i0
    for i in range(i0 + 1, min(n, (i0 + 8) & ~7)):
        nz = buf[i] != 0
        longest = max(longest, (i - prev_i) * nz)
        prev_i = i if nz else prev_i
    for w in range((i0 + 8) >> 3, nw):
        m = _nonzero_bytes(words[w])
        if m:
            longest = max(longest, 8 * w + _LOW[m] - prev_i, _MAXD[m])
            prev_i = 8 * w + _HIGH[m]
    for i in range(max(8 * nw, min(n, (i0 + 8) & ~7)), n):
        nz = buf[i] != 0
        longest = max(longest, (i - prev_i) * nz)
        prev_i = i if nz else prev_i
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


@_jit
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
