"""Compiled (numba) inner loops of the segmented sieve on a bit-packed mod-30 wheel, one byte
per 30 numbers: crossing off (`crossing`), the bucket sieve (`buckets`), reading a segment
(`counting`)."""
# In a lane (consecutive segments of a job on one worker) the primes >= LARGE keep their next
# multiples between segments: a flat array for those that hit every segment (`cross_medium`),
# buckets per segment for the rest (`cross_large`); outside a lane they go over the whole
# segment in one pass.
#
# Imported by `sieve` when the first prime segment runs in a process: `import numba` costs ~0.4
# s and tens of MiB, which the event loop and the log workers should not pay. `cache=True`
# stores the machine code in `sieve.numba_cache_dir` (NUMBA_CACHE_DIR), so a worker loads it in
# milliseconds after the first compile, also after a restart.
from __future__ import annotations

from logtallyd.primes.buckets import LARGE, MEDIUM, cross_large, start_large
from logtallyd.primes.counting import primes_of, stats
from logtallyd.primes.crossing import BLOCK, cross_medium, sieve_segment, start_medium
from logtallyd.primes.wheel import WHEEL

__all__ = ["BLOCK", "LARGE", "MEDIUM", "WHEEL", "cross_large", "cross_medium", "primes_of", "sieve_segment",
           "start_large", "start_medium", "stats"]
