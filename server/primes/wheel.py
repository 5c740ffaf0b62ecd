"""The mod-30 wheel's tables for the compiled sieve loops, and the decorator that compiles them."""
# Byte i of a segment starting at wheel column c0 holds the numbers 30*(c0+i) + r for r in
# WHEEL, bit k for WHEEL[k]. A multiple p*q of a prime p, q coprime to 30, is a column and the
# wheel index k of q; the 8 multiples with q in 30t + WHEEL make one turn of p columns.
# The compiled code holds these tables as constants, and numba's cache checks only the file of
# each compiled function: after changing a table here, clear the cache (or touch crossing.py,
# buckets.py and counting.py). An install writes every file anew, so it never meets a stale one.
from __future__ import annotations

from typing import Any, Callable

import numba
import numpy as np

WHEEL = np.array((1, 7, 11, 13, 17, 19, 23, 29), dtype=np.int64)
# bit index of residue r mod 30 (r coprime to 30), -1 elsewhere
BIT = np.full(30, -1, dtype=np.int64)
BIT[WHEEL] = np.arange(8)
# wheel index of the first residue >= r coprime to 30, for r = 0..29
NEXT_K = np.array([int(np.searchsorted(WHEEL, r)) for r in range(30)], dtype=np.int64)
# Tables by 8*i + k, i the wheel index of p mod 30 and k that of q:
# from q to the next q coprime to 30
DQ = np.array((6, 4, 2, 4, 2, 4, 6, 2), dtype=np.int64)
# the bit of p*q, and the mask that clears it
MBIT = np.array([BIT[(int(a) * int(b)) % 30] for a in WHEEL for b in WHEEL], dtype=np.int64)
UNSET = np.array([~(1 << int(m)) & 0xFF for m in MBIT], dtype=np.uint8)
# p*q to p*(q + DQ[k]) is (p // 30) * DQ[k] + CORR columns
CORR = np.array([((int(a) * int(b)) % 30 + int(a) * int(d)) // 30
                 for a in WHEEL for b, d in zip(WHEEL, DQ)], dtype=np.int64)
# p*(30t + WHEEL[k]) is at column p*t + (p // 30) * WHEEL[k] + TURN
TURN = np.array([(int(a) * int(b)) // 30 for a in WHEEL for b in WHEEL], dtype=np.int64)


def jit(fn: Callable[..., Any]) -> Any:
    """njit with an on-disk cache; without one if no cache directory is usable."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba: "no locator available" (read-only tree and home)
        return numba.njit(nogil=True)(fn)


def inline(fn: Callable[..., Any]) -> Any:
    """njit, inlined into its callers in numba's IR, so the constants it is called with fold."""
    return numba.njit(inline="always")(fn)
