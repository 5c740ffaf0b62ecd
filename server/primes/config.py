"""The `[primes]` section of config.toml: limits of PRIME COUNT / PRIME LIST / ISPRIME jobs.

Kept apart from the job service and the sieve so that loading the config imports neither numpy
nor numba.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

# Segment size counted as one byte per wheel number (the unit of `sieve.segments` and of the
# config): 4 MiB = 524,288 columns = 15.7 M numbers in a 512 KiB packed buffer (L2: 2 MiB/core here).
SEGMENT_BYTES = 1 << 22


class PrimeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[primes]` in config.toml."""

    max_range: Annotated[int, msgspec.Meta(ge=0)] = 10**12  # hi - lo limit for COUNT
    max_list: Annotated[int, msgspec.Meta(ge=0)] = 10**7  # hi - lo limit for LIST
    max_jobs: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2  # concurrent COUNT/LIST; more -> "too many jobs"
    # Segment size, one byte per wheel number (the packed sieve is an eighth: 4 MiB -> 512 KiB,
    # in L2). 4 MiB = 15.7 M numbers, ~4 ms of work near 1e10 (~16 ms at 1e13): short enough
    # for ingest to interleave and CANCEL to bite. Each segment also costs a round trip through
    # the scheduler, during which its worker idles, so smaller segments cost throughput.
    # The lower bound is one cache line of packed columns per pre-sieve pattern read.
    segment_bytes: Annotated[int, msgspec.Meta(ge=8 * 64, le=1 << 26)] = SEGMENT_BYTES
    progress_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 0.5  # 0 = after every segment
    # Largest hi. A job's workers each hold the primes up to sqrt(hi) (4 bytes each) and, per
    # lane they ran, those primes' next multiples (8 bytes each in the buckets): at 1e16,
    # 5.76 M primes, 23 MB + 47 MB per lane; a 4 MiB segment takes ~10 ms at 1e15 (1.95 M primes).
    max_value: Annotated[int, msgspec.Meta(ge=1, le=10**16)] = 10**16
    # PRIME COUNT answers with the result when the job ends this soon, else with its id.
    answer_within_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 1.0
    list_chunk: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000  # primes per streamed LIST line
    finished_kept: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 20  # finished jobs JOBS still shows
