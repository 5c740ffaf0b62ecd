"""The bucket sieve for a lane's large primes (numba-compiled), as primesieve's EratBig."""
from __future__ import annotations

import numpy as np

from logtallyd.primes.wheel import BIT, CORR, DQ, NEXT_K, UNSET, WHEEL, inline, jit

# Large primes (>= LARGE) go through a bucket sieve in a lane, as primesieve's EratBig: the
# columns are cut into cells of `cols` (one job segment each), and each large prime sits in the
# bucket of the cell that holds its next multiple, so a segment only touches the primes that hit
# it (at 1e15 most of the 1.95 M primes skip a 4 MiB segment; scanning all of them cost ~4x the
# crossing off). A multiple p*q (q coprime to 30) is a column and the wheel index k of q; the
# next one is q + DQ[k], at column col + (p // 30) * DQ[k] + CORR[8*i + k] with bit
# MBIT[8*i + k], where i is the wheel index of p mod 30.
#
# A bucket entry is one int64: p // 30 << 35 | i << 32 | (column - cell start) << 3 | k, so the
# crossing loop never reads the prime list (a random read per entry). Buckets are linked lists
# of _CHUNK-entry chunks from one pool; bucket g & (nb - 1) holds cell g, nb a power of two
# above the largest step in cells. `meta`: [free chunks, primes activated, cols, nb].
LARGE = 1 << 15  # in a lane, primes from here on go through `cross_medium` or the buckets
# Primes below MEDIUM cells' worth of columns hit a cell 8 / MEDIUM times or more on average:
# they keep their next multiple in a flat array and are looked at in every segment, which costs
# less than taking them out of a bucket and putting them back. Per 4 MiB segment at 1e15 (CPU
# time over 60 segments, one lane start included): MEDIUM 2 / 4 / 8 / 16 / 32 -> 9.1 / 9.1 /
# 9.3 / 9.9 / 11.3 ms.
MEDIUM = 4
_CHUNK = 1 << 11
_COLUMN = (1 << 32) - 8  # the (column - cell start) << 3 bits of an entry


@inline
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


@jit
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
    n_free = nchunks
    while j < P.size and np.int64(P[j]) * np.int64(P[j]) < lo:
        p = np.int64(P[j])
        q0 = (lo + p - 1) // p
        r = q0 % 30
        k = NEXT_K[r]
        col = (p * (q0 - r + WHEEL[k])) // 30
        g = col // cols
        v = (p // 30) << 35 | BIT[p % 30] << 32 | (col - g * cols) << 3 | k
        b = g & (nb - 1)
        h = head[b]  # `_push`, written out (see `cross_large`)
        if h < 0 or fill[h] == _CHUNK:
            n_free -= 1
            c = free[n_free]
            nxt[c] = h
            fill[c] = 0
            head[b] = c
            h = c
        ent[h * _CHUNK + fill[h]] = v
        fill[h] += 1
        j += 1
    meta[0] = n_free
    meta[1] = j
    return ent, nxt, fill, head, free, meta


@jit
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
        v = (p // 30) << 35 | BIT[p % 30] << 32 | (col - base) << 3 | BIT[p % 30]
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
                buf[np.uint64(col - c0)] &= UNSET[i + k]
                col += a * DQ[k] + CORR[i + k]
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
