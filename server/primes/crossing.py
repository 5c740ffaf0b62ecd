"""Crossing off: a segment's pre-sieve and its sieving primes' multiples (numba-compiled)."""
# A prime p crosses off p*q, q coprime to 30, which come in turns of 8 (q = 30t + WHEEL[k]):
# one turn spans p columns and puts its k-th multiple at a fixed offset d_k from the first,
# with a fixed bit, so a turn is eight ANDs at constant offsets and masks (primesieve's
# EratSmall). Primes with several turns per pass (below a quarter of the columns) go turn by
# turn; the others step multiple by multiple (a table look-up per step), cheaper when a pass
# holds less than a turn. Primes below `SMALL` sieve one L1-sized block at a time (pattern copy
# for 7..167 first, then crossing off, while the block is in L1); the others go over the whole
# segment (L2) in one pass.
from __future__ import annotations

import numpy as np

from logtallyd.primes.wheel import BIT, CORR, DQ, NEXT_K, TURN, UNSET, WHEEL, inline, jit

# Bytes per L1 block (48 KiB L1d here). Per 4 MiB segment near 1e10, primes below 8192 and
# the rest over the segment, 32/48/64 KiB blocks: 1.46/1.38/1.69 ms.
BLOCK = 48 << 10
# Below this a prime hits a block 8 * BLOCK / SMALL times or more: sieved block by block.
# Primes 173..32768 per 4 MiB segment near 1e10, SMALL 4096/8192/16384: 1.49/1.38/1.42 ms.
SMALL = 1 << 13


@inline
def _full_turns(buf, x, e, pu, a, i):  # pragma: no cover - compiled
    """Whole turns of the prime p = 30a + WHEEL[i // 8] from column x while they end before e.

    Called with a constant i, so the eight masks are immediates and the loop is eight ANDs and
    an add (numba: no wraparound checks on uint64 indices)."""
    d1 = np.uint64(a * 6 + TURN[i + 1] - TURN[i])
    d2 = np.uint64(a * 10 + TURN[i + 2] - TURN[i])
    d3 = np.uint64(a * 12 + TURN[i + 3] - TURN[i])
    d4 = np.uint64(a * 16 + TURN[i + 4] - TURN[i])
    d5 = np.uint64(a * 18 + TURN[i + 5] - TURN[i])
    d6 = np.uint64(a * 22 + TURN[i + 6] - TURN[i])
    d7 = np.uint64(a * 28 + TURN[i + 7] - TURN[i])
    while x + d7 < e:
        buf[x] &= UNSET[i]
        buf[x + d1] &= UNSET[i + 1]
        buf[x + d2] &= UNSET[i + 2]
        buf[x + d3] &= UNSET[i + 3]
        buf[x + d4] &= UNSET[i + 4]
        buf[x + d5] &= UNSET[i + 5]
        buf[x + d6] &= UNSET[i + 6]
        buf[x + d7] &= UNSET[i + 7]
        x += pu
    return x


@inline
def _turns(buf, c0, e, p, col, k):  # pragma: no cover - compiled
    """Cross off p's multiples from column col (wheel index k) up to column c0 + e (exclusive)
    in buf (columns c0..), turn by turn; returns the next multiple's (column, wheel index)."""
    a = p // 30
    i = 8 * BIT[p % 30]
    if k:  # finish the turn col is in; it may have begun before c0
        xr = col - c0 - a * (WHEEL[k] - 1) - TURN[i + k] + TURN[i]
        while k < 8:
            o = xr + a * (WHEEL[k] - 1) + TURN[i + k] - TURN[i]
            if o >= e:
                return c0 + o, k
            buf[np.uint64(o)] &= UNSET[i + k]
            k += 1
        x = np.uint64(xr + p)
    else:
        x = np.uint64(col - c0)
    pu = np.uint64(p)
    eu = np.uint64(e)
    # one branch per residue of p, each with its masks as constants
    if i == 0:
        x = _full_turns(buf, x, eu, pu, a, 0)
    elif i == 8:
        x = _full_turns(buf, x, eu, pu, a, 8)
    elif i == 16:
        x = _full_turns(buf, x, eu, pu, a, 16)
    elif i == 24:
        x = _full_turns(buf, x, eu, pu, a, 24)
    elif i == 32:
        x = _full_turns(buf, x, eu, pu, a, 32)
    elif i == 40:
        x = _full_turns(buf, x, eu, pu, a, 40)
    elif i == 48:
        x = _full_turns(buf, x, eu, pu, a, 48)
    else:
        x = _full_turns(buf, x, eu, pu, a, 56)
    k = 0
    while True:  # the last turn, cut by e (a whole turn does not fit any more)
        o = x + np.uint64(a * (WHEEL[k] - 1) + TURN[i + k] - TURN[i])
        if o >= eu:
            return c0 + np.int64(o), k
        buf[o] &= UNSET[i + k]
        k += 1


@inline
def _steps(buf, c0, e, p, col, k):  # pragma: no cover - compiled
    """`_turns` for a prime with less than a turn or so per pass: multiple by multiple."""
    i = 8 * BIT[p % 30]
    a = p // 30
    end = c0 + e
    while col < end:
        buf[np.uint64(col - c0)] &= UNSET[i + k]
        col += a * DQ[k] + CORR[i + k]
        k = (k + 1) & 7
    return col, k


@inline
def _first_multiple(p, c0):  # pragma: no cover - compiled
    """(column, wheel index) of the first p*q >= max(p*p, 30*c0), q coprime to 30."""
    q0 = (max(p * p, 30 * c0) + p - 1) // p
    r = q0 % 30
    k = NEXT_K[r]
    return (p * (q0 - r + WHEEL[k])) // 30, k


@inline
def _cross_pass(buf, c0, P, j0, j1, col, kk, n):  # pragma: no cover - compiled
    """Cross off the multiples of P[j0:j1] in buf (columns c0..), state col/kk[j - n]."""
    e = buf.size
    j = j0
    while j < j1 and 4 * np.int64(P[j]) <= e:  # four turns or more in this pass
        c, k = _turns(buf, c0, e, np.int64(P[j]), col[j - n], np.int64(kk[j - n]))
        col[j - n] = c
        kk[j - n] = k
        j += 1
    while j < j1:
        c, k = _steps(buf, c0, e, np.int64(P[j]), col[j - n], np.int64(kk[j - n]))
        col[j - n] = c
        kk[j - n] = k
        j += 1


@jit
def sieve_segment(c0, ncols, P, pats, offs, periods):  # pragma: no cover - compiled
    """Bytes for columns c0 .. c0+ncols-1: bit set = no prime factor among 7..167 and P.

    P: sieving primes (>= 173, ascending, uint32). pats: the pre-sieve patterns end to end,
    pattern g at offs[g] with period periods[g] bytes, each one period plus BLOCK bytes long.
    The primes 7..167 and 1 come out wrong (crossed / kept); the caller fixes the first six
    columns. Each prime starts at p*p, so the sieving primes themselves stay.
    """
    buf = np.empty(ncols, np.uint8)
    seg_hi = 30 * (c0 + ncols)
    n_used = 0
    while n_used < P.size and np.int64(P[n_used]) * np.int64(P[n_used]) < seg_hi:
        n_used += 1
    n_small = 0
    while n_small < n_used and P[n_small] < SMALL:
        n_small += 1
    col = np.empty(n_used, np.int64)
    kk = np.empty(n_used, np.uint8)
    for j in range(n_used):
        col[j], kk[j] = _first_multiple(np.int64(P[j]), c0)
    # Indices are uint64 below: numba cannot prove a signed index >= 0 and adds a wraparound
    # check per access, which blocks vectorising the copy (45x).
    for b0 in range(0, ncols, BLOCK):
        b1 = min(b0 + BLOCK, ncols)
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
        for j in range(n_small):
            c, k = _turns(buf, c0, b1, np.int64(P[j]), col[j], np.int64(kk[j]))
            col[j] = c
            kk[j] = k
    _cross_pass(buf, c0, P, n_small, n_used, col, kk, 0)
    return buf


@jit
def start_medium(P, j0, j1, c0):  # pragma: no cover - compiled
    """(column, wheel index) of the first multiple p*q >= max(p*p, 30*c0), q coprime to 30, of each P[j0:j1]."""
    n = j1 - j0
    col = np.empty(n, np.int64)
    kk = np.empty(n, np.uint8)
    for j in range(n):
        col[j], kk[j] = _first_multiple(np.int64(P[j0 + j]), c0)
    return col, kk


@jit
def cross_medium(buf, c0, P, j0, col, kk):  # pragma: no cover - compiled
    """Cross off the multiples of P[j0:j0 + col.size] in `buf` (columns c0..), advancing `col`/`kk` past it."""
    _cross_pass(buf, c0, P, j0, j0 + col.size, col, kk, j0)
