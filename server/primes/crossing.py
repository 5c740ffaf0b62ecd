"""Crossing off: a segment's pre-sieve and its sieving primes' multiples (numba-compiled)."""
# A prime p crosses off p*q, q coprime to 30, which come in turns of 8 (q = 30t + WHEEL[k]):
# one turn spans p columns and puts its k-th multiple at a fixed offset d_k from the first,
# with a fixed bit, so a turn is eight ANDs at constant offsets and masks (primesieve's
# EratSmall). The whole segment is pre-sieved first (patterns for 7..167); then primes below
# `SMALL` go block by block, while L1 holds the block, and the others over the whole segment
# (L2) in one pass: turn by turn when a pass holds several turns, else multiple by multiple
# (a table look-up per step), cheaper when a pass holds less than a turn.
from __future__ import annotations

import numpy as np

from logtallyd.primes.wheel import BIT, CORR, DQ, NEXT_K, TURN, UNSET, WHEEL, inline, jit

# Bytes per L1 block (48 KiB L1d here). Per 4 MiB segment near 1e10, pre-sieve and primes
# 173..32768, blocks of 32/40/48/64 KiB: 1.13/1.11/1.14/1.55 ms.
BLOCK = 40 << 10
# Primes below this sieve block by block: those turns that start in a block are crossed off
# whole, into the next block when they reach past it, so a block costs a prime one loop and no
# partial turn. Same measure, SMALL 8192/16384/32768/65536 (48 KiB blocks): 1.35/1.21/1.13/1.21 ms.
SMALL = 1 << 15


@inline
def _full_turns(buf, x, e, pu, a, i):  # pragma: no cover - compiled
    """Whole turns of the prime p = 30a + WHEEL[i // 8] from column x while they end before e:
    eight ANDs and an add each (uint64 indices: numba adds no wraparound checks)."""
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
    # one loop for all residues (their masks as variables): the passes over the whole segment
    # are bound by L2, and eight copies of the loop cost seconds of compiling
    x = _full_turns(buf, x, eu, pu, a, i)
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


@jit
def _cross_pass(buf, c0, P, j0, j1, col, kk, n):  # pragma: no cover - compiled
    """Cross off the multiples of P[j0:j1] in buf (columns c0..), state col/kk[j - n].

    Compiled once, not inlined: each copy of `_turns` is eight unrolled loops to compile."""
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


@inline
def _spill_turns(buf, x, e, pu, a, i):  # pragma: no cover - compiled
    """`_full_turns` for every turn that starts before e: the last one may reach up to p - 1
    bytes past e (the caller leaves that room). Called with a constant i (`_block_turns`), so
    the eight masks are immediates."""
    # "ends before e + d7" is "starts before e": the whole-turn loop with its bound moved by the
    # turn's last offset
    return _full_turns(buf, x, e + np.uint64(a * 28 + TURN[i + 7] - TURN[i]), pu, a, i)


@inline
def _block_turns(buf, x, e, p, i):  # pragma: no cover - compiled
    """`_spill_turns` of the prime p (wheel index i // 8), its masks as constants."""
    a = p // 30
    pu = np.uint64(p)
    if i == 0:
        return _spill_turns(buf, x, e, pu, a, 0)
    if i == 8:
        return _spill_turns(buf, x, e, pu, a, 8)
    if i == 16:
        return _spill_turns(buf, x, e, pu, a, 16)
    if i == 24:
        return _spill_turns(buf, x, e, pu, a, 24)
    if i == 32:
        return _spill_turns(buf, x, e, pu, a, 32)
    if i == 40:
        return _spill_turns(buf, x, e, pu, a, 40)
    if i == 48:
        return _spill_turns(buf, x, e, pu, a, 48)
    return _spill_turns(buf, x, e, pu, a, 56)


@jit
def sieve_segment(c0, ncols, P, pats, offs, periods):  # pragma: no cover - compiled
    """Bytes for columns c0 .. c0+ncols-1: bit set = no prime factor among 7..167 and P.

    P: sieving primes (>= 173, ascending, uint32). pats: the pre-sieve patterns end to end,
    pattern g at offs[g] with period periods[g] bytes, each one period plus BLOCK bytes long.
    The primes 7..167 and 1 come out wrong (crossed / kept); the caller fixes the first six
    columns. Each prime starts at p*p, so the sieving primes themselves stay.
    """
    buf = np.empty(ncols, np.uint8)
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
    seg_hi = 30 * (c0 + ncols)
    n_used = 0
    while n_used < P.size and np.int64(P[n_used]) * np.int64(P[n_used]) < seg_hi:
        n_used += 1
    n_small = 0
    while n_small < n_used and P[n_small] < SMALL:
        n_small += 1
    # The small primes by residue mod 30, so the branch to their masks goes the same way from
    # one prime to the next; each at the first whole turn past its first multiple (that turn's
    # earlier multiples crossed here).
    order = np.empty(n_small, np.int64)
    at = np.zeros(9, np.int64)
    for j in range(n_small):
        at[BIT[P[j] % 30] + 1] += 1
    for i in range(8):
        at[i + 1] += at[i]
    for j in range(n_small):
        i = BIT[P[j] % 30]
        order[at[i]] = j
        at[i] += 1
    xs = np.empty(n_small, np.uint64)
    for t in range(n_small):
        p = np.int64(P[order[t]])
        col, k = _first_multiple(p, c0)
        a = p // 30
        i = 8 * BIT[p % 30]
        x = col - c0 - a * (WHEEL[k] - 1) - TURN[i + k] + TURN[i]  # the turn's start, maybe < 0
        if k:
            while k < 8:
                o = x + a * (WHEEL[k] - 1) + TURN[i + k] - TURN[i]
                if o < ncols:
                    buf[np.uint64(o)] &= UNSET[i + k]
                k += 1
            x += p
        xs[t] = np.uint64(min(x, ncols))
    # Block by block while L1 holds the block; a turn that starts in a block may end in the
    # next one, so this goes on while every such turn ends inside the segment.
    b1 = BLOCK
    while b1 + SMALL <= ncols:
        e = np.uint64(b1)
        for t in range(n_small):
            p = np.int64(P[order[t]])
            xs[t] = _block_turns(buf, xs[t], e, p, 8 * BIT[p % 30])
        b1 += BLOCK
    # the small primes' rest, up to the segment's end, and the other primes in one pass
    col = np.empty(n_used, np.int64)
    kk = np.zeros(n_used, np.uint8)
    for t in range(n_small):
        col[order[t]] = c0 + np.int64(xs[t])
    for j in range(n_small, n_used):
        col[j], kk[j] = _first_multiple(np.int64(P[j]), c0)
    _cross_pass(buf, c0, P, 0, n_used, col, kk, 0)
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
