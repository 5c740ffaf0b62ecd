"""Segmented wheel sieve: pi(10^k), stats against a trivial reference, merge across any split."""
from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from logtallyd.primes import primality, sieve
from tests.conftest import require_tool

# pi(10^k), k = 1..10 (OEIS A006880)
PI = [4, 25, 168, 1229, 9592, 78498, 664579, 5761455, 50847534, 455052511]
# twin-prime pairs below 10^k (OEIS A007508)
TWINS = [2, 8, 35, 205, 1224, 8169, 58980, 440312, 3424506, 27412679]
# largest prime below 10^k (OEIS A003618)
LAST = {6: 999983, 7: 9999991, 8: 99999989, 9: 999999937, 10: 9999999967}


def reference_primes(lo: int, hi: int) -> list[int]:
    return [n for n in range(max(lo, 2), hi + 1)
            if all(n % d for d in range(2, int(n ** 0.5) + 1))]


def count_range(lo: int, hi: int, segment_bytes: int = sieve.SEGMENT_BYTES) -> sieve.SegmentStats:
    base = sieve.base_primes(hi)
    total = None
    for a, b in sieve.segments(lo, hi, segment_bytes):
        r = sieve.segment_stats(a, b, base)
        total = r if total is None else sieve.merge(total, r)
    assert total is not None
    return total


@pytest.mark.parametrize("k", range(1, 10))
def test_pi_of_powers_of_ten(k: int) -> None:
    r = count_range(1, 10**k)
    assert (r.count, r.twins, r.first) == (PI[k - 1], TWINS[k - 1], 2)
    if k in LAST:
        assert r.last == LAST[k]
    if k == 9:
        assert (r.gap, r.gap_after) == (282, 436273009)  # maximal gap record (A002386)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LOGTALLY_SLOW"), reason="~4 s on one core; set LOGTALLY_SLOW=1")
def test_pi_of_ten_to_the_ten() -> None:
    r = count_range(1, 10**10)
    assert (r.count, r.twins, r.last) == (PI[9], TWINS[9], LAST[10])
    assert (r.gap, r.gap_after) == (354, 4302407359)  # maximal gap record (A002386)


def test_maximal_gaps_below_powers_of_ten() -> None:
    # maximal prime gaps (OEIS A002386/A005250): 114 after 492113, 154 after 4652353,
    # 220 after 47326693
    assert (count_range(1, 10**6).gap, count_range(1, 10**6).gap_after) == (114, 492113)
    r = count_range(1, 10**8)
    assert (r.gap, r.gap_after, r.first, r.last) == (220, 47326693, 2, 99999989)


def test_tiny_ranges_and_the_small_primes() -> None:
    assert sieve.segment_stats(0, 1, sieve.base_primes(1)).count == 0
    r = sieve.segment_stats(2, 7, sieve.base_primes(7))
    assert r == sieve.SegmentStats(2, 7, 4, 2, 7, 2, 3, 2)  # (3,5), (5,7); gap 3->5 first
    assert sieve.segment_stats(90, 96, sieve.base_primes(96)).count == 0
    assert sieve.segment_stats(97, 97, sieve.base_primes(97)) == sieve.SegmentStats(
        97, 97, 1, 97, 97, 0, None, 0)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 200_000), st.integers(0, 3_000))
def test_stats_match_reference(lo: int, width: int) -> None:
    hi = lo + width
    base = sieve.base_primes(hi)
    expected = reference_primes(lo, hi)
    assert sieve.segment_stats(lo, hi, base) == sieve.stats_of(expected, lo, hi)
    got = np.frombuffer(sieve.segment_primes(lo, hi, base), dtype="<i8").tolist()
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**12), st.integers(1, 20_000), st.sampled_from([8, 64, 256, 4096]))
def test_any_split_merges_to_the_whole(lo: int, width: int, segment_bytes: int) -> None:
    hi = lo + width
    whole = sieve.segment_stats(lo, hi, sieve.base_primes(hi))
    parts = list(sieve.segments(lo, hi, segment_bytes))
    assert len(parts) == sieve.segment_count(lo, hi, segment_bytes)
    assert parts[0][0] == lo and parts[-1][1] == hi
    assert all(b + 1 == c for (_, b), (c, _) in zip(parts, parts[1:]))
    assert [sieve.segment_range(lo, hi, i, segment_bytes) for i in range(len(parts))] == parts
    assert count_range(lo, hi, segment_bytes) == whole


def test_large_numbers_against_reference_list() -> None:
    lo = 10**12
    hi = lo + 2000
    expected = [n for n in range(lo, hi + 1) if primality.check(n)["prime"]]  # Miller-Rabin
    base = sieve.base_primes(hi)
    assert np.frombuffer(sieve.segment_primes(lo, hi, base), "<i8").tolist() == expected
    assert sieve.segment_stats(lo, hi, base) == sieve.stats_of(expected, lo, hi)


@pytest.mark.parametrize("step", [1, 2, 3, sieve.CATCH_UP + 1, sieve.CATCH_UP + 2])
@pytest.mark.parametrize("cell_bytes", [1 << 14, sieve.SEGMENT_BYTES])
def test_a_lane_gives_the_plain_sieves_answers(step: int, cell_bytes: int) -> None:
    # Small segments near 1e12: the lane's large primes (>= kernels.LARGE, up to 1e6) hit some
    # segments several times and skip others. step > 1: the lane's segments between these "ran
    # elsewhere", so the buckets catch up over step - 1 segments, or start afresh past CATCH_UP
    # cells. Cells of SEGMENT_BYTES hold many segments each.
    lo, hi = 10**12 - 1_000_003, 10**12 + 2_000_000
    base = sieve.base_primes(hi)
    lane = f"test/{step}"
    segs = list(sieve.segments(lo, hi, 1 << 14))[::step]
    for a, b in segs[:-1]:
        assert sieve.lane_stats(a, b, hi, lane, False, cell_bytes) == sieve.segment_stats(a, b, base)
    assert sieve._lanes[lane][0] > 0 and len(sieve._lanes) <= sieve.LANES_KEPT
    assert sieve.lane_stats(*segs[-1], hi, lane, True, cell_bytes) == sieve.segment_stats(*segs[-1], base)
    assert lane not in sieve._lanes  # the worker let go of the lane's state


def lane_total(lo: int, hi: int, segment_bytes: int, cell_bytes: int, lane: str) -> sieve.SegmentStats:
    """A lane over [lo, hi] in segments of `segment_bytes`, its buckets in cells of `cell_bytes`."""
    merged = None
    segs = list(sieve.segments(lo, hi, segment_bytes))
    for i, (a, b) in enumerate(segs):
        r = sieve.lane_stats(a, b, hi, lane, i == len(segs) - 1, cell_bytes)
        merged = r if merged is None else sieve.merge(merged, r)
    assert merged is not None
    return merged


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**13), st.integers(1, 200_000), st.sampled_from([512, 4096, 1 << 14]),
       st.booleans())
def test_a_lane_merges_to_the_plain_whole(lo: int, width: int, segment_bytes: int, cells: bool) -> None:
    # cells: the buckets' cells are the segments (as in a job), else several segments share one
    hi = lo + width
    merged = lane_total(lo, hi, segment_bytes, segment_bytes if cells else sieve.SEGMENT_BYTES, "prop")
    assert merged == sieve.segment_stats(lo, hi, sieve.base_primes(hi))


@pytest.mark.parametrize(("lo", "hi"), [
    (0, 1), (1, 2), (2, 3), (3, 5), (4, 8), (5, 7), (6, 6), (0, 40), (7, 7), (29, 31), (30, 30),
    (31, 37), (1, 210), (209, 211), (163, 173), (166, 169), (167, 167), (2, 10**5),
])
@pytest.mark.parametrize("segment_bytes", [512, 8 * 70])
def test_a_lane_across_the_small_primes_and_wheel_edges(lo: int, hi: int, segment_bytes: int) -> None:
    # 8 * 70 bytes: cells of 70 columns, not a power of two (a reciprocal finds a prime's next cell)
    assert lane_total(lo, hi, segment_bytes, segment_bytes, "edges") == sieve.stats_of(
        reference_primes(lo, hi), lo, hi)


@pytest.mark.parametrize("offset", [0, 1, 7, 29, 30, 31])
def test_a_lane_whose_range_is_off_the_wheel_and_cells(offset: int) -> None:
    # starts and ends inside a column and inside a cell; the bucketed primes (1e6 .. 1.4e6)
    # jump over many 512-byte cells, so most of them wait several cells in their bucket
    lo, hi = 2 * 10**12 + offset, 2 * 10**12 + 3 * 10**6 + 2 * offset + 1
    whole = sieve.segment_stats(lo, hi, sieve.base_primes(hi))
    assert lane_total(lo, hi, 512, 512, f"off/{offset}") == whole
    assert lane_total(lo, hi, 4096, 4096, f"off/{offset}") == whole


def test_a_task_of_several_segments_goes_cell_by_cell_through_the_lanes_buckets() -> None:
    # a job hands a worker a few consecutive segments at a time; the lane goes on after them
    lo, hi = 10**12, 10**12 + 200_000
    mid = 30 * ((lo + 100_000) // 30) - 1  # 3333 columns: several 512-byte cells; ends a column
    base = sieve.base_primes(hi)
    sieve.lane_stats(lo - 30 * 64, lo - 1, hi, "across", False, 512)
    assert sieve.lane_stats(lo, mid, hi, "across", False, 512) == sieve.segment_stats(lo, mid, base)
    assert sieve._lanes["across"][0] == mid // 30 + 1  # its buckets wait at the next column
    assert sieve.lane_stats(mid + 1, hi, hi, "across", True, 512) == sieve.segment_stats(mid + 1, hi, base)
    assert "across" not in sieve._lanes


@pytest.mark.slow
def test_a_lane_at_the_largest_value_against_primesieve() -> None:
    # max_value 1e16: 5.76 M sieving primes up to 1e8; in cells of 16,384 columns most of them wait
    # thousands of cells; the range ends at the largest value a job takes
    exe = require_tool("primesieve")
    hi = 10**16
    lo = hi - 3 * 10**7 - 11
    merged = lane_total(lo, hi, 1 << 17, 1 << 17, "1e16")
    out = subprocess.run([exe, str(lo), str(hi), "--count", "--quiet"], capture_output=True, text=True,
                         check=True).stdout
    assert merged.count == int(out.split()[-1])
    last = subprocess.run([exe, str(hi - 1000), str(hi), "--print"], capture_output=True, text=True,
                          check=True).stdout.split()[-1]
    assert merged.last == int(last)


def test_sieving_primes_above_the_numpy_sieve_match_it() -> None:
    hi = (1 << 21) ** 2 + 5  # root 2**21: computed by the segmented sieve, not `simple_primes`
    assert sieve.sieving_primes(hi).tolist() == np.frombuffer(sieve.base_primes(hi), np.uint32).tolist()


@pytest.mark.parametrize(("env", "expected"), [
    ({"NUMBA_CACHE_DIR": "/n", "CACHE_DIRECTORY": "/var/cache/logtally"}, "/n"),
    ({"CACHE_DIRECTORY": "/var/cache/logtally:/var/cache/x", "XDG_CACHE_HOME": "/x"}, "/var/cache/logtally/numba"),
    ({"XDG_CACHE_HOME": "/x", "HOME": "/home/u"}, "/x/logtally/numba"),
    ({"HOME": "/home/u"}, "/home/u/.cache/logtally/numba"),
    ({}, None),
])
def test_numba_cache_dir(env: dict[str, str], expected: str | None) -> None:
    assert sieve.numba_cache_dir(env) == expected


def test_a_lane_near_1e15_against_primesieve() -> None:
    # 1.95 M sieving primes, most of them kept between the lane's segments
    exe = require_tool("primesieve")
    lo, hi = 10**15, 10**15 + 10**8
    merged = None
    for a, b in sieve.segments(lo, hi):
        r = sieve.lane_stats(a, b, hi, "near-1e15")
        merged = r if merged is None else sieve.merge(merged, r)
    assert merged is not None
    out = subprocess.run([exe, str(lo), str(hi), "--count", "--quiet"], capture_output=True, text=True,
                         check=True).stdout
    assert merged.count == int(out.split()[-1])
    first = subprocess.run([exe, str(lo), str(lo + 1000), "--print"], capture_output=True, text=True,
                           check=True).stdout.split()[0]
    assert merged.first == int(first)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0, 0, 0, 1, 2, 0x80, 0x81, 0x0C, 0x30, 0xFF]), min_size=1, max_size=90),
       st.integers(0, 7), st.integers(0, 10**9))
def test_stats_of_packed_columns_against_their_numbers(cols: list[int], skip: int, c0: int) -> None:
    # zero words, words with one nonzero byte, odd tails, a first nonzero byte at any offset:
    # the word-at-a-time gap search must find what a walk over the numbers finds
    buf = np.zeros(skip + len(cols), np.uint8)
    buf[skip:] = cols
    kernels = sieve._kernels()
    numbers = kernels.primes_of(buf, c0).tolist()
    count, first, last, gap, after, twins = kernels.stats(buf, c0)
    ref = sieve.stats_of(numbers, 0, 0)
    assert (count, twins, gap) == (ref.count, ref.twins, ref.gap)
    if numbers:
        assert (first, last, after if after >= 0 else None) == (ref.first, ref.last, ref.gap_after)


@pytest.mark.parametrize("every", [1, 2, 3, 9])
@pytest.mark.parametrize("seed", [0, 1])
def test_stats_with_many_near_longest_distances_against_their_numbers(every: int, seed: int) -> None:
    # nonzero bytes evenly spaced: every distance ties the longest, more places than the gap
    # search notes for its second pass, so it goes over every word; one wider hole decides
    rng = np.random.default_rng(seed)
    buf = np.zeros(5000, np.uint8)
    buf[::every] = rng.integers(1, 256, buf[::every].size)
    buf[3001:3001 + 2 * every] = 0
    kernels = sieve._kernels()
    numbers = kernels.primes_of(buf, 1000).tolist()
    count, first, last, gap, after, twins = kernels.stats(buf, 1000)
    ref = sieve.stats_of(numbers, 0, 0)
    assert (count, first, last, gap, after, twins) == (ref.count, ref.first, ref.last, ref.gap, ref.gap_after,
                                                       ref.twins)


def test_pre_sieve_patterns_keep_exactly_the_numbers_coprime_to_their_group() -> None:
    pats, offsets, periods = sieve._pattern_bank(64)
    for group, at, period in zip(sieve._GROUPS, offsets.tolist(), periods.tolist()):
        columns = np.arange(period + 64, dtype=np.int64)
        pat = pats[at:at + period + 64]
        for k, r in enumerate(sieve.WHEEL):
            n = 30 * columns + r
            keep = np.all([n % p != 0 for p in group], axis=0)
            assert np.array_equal((pat >> k & 1).astype(bool), keep), (group, r)


@given(st.integers(0, 10**6), st.integers(0, 10**4), st.integers(1, 6))
def test_pieces_tile_the_range_and_meet_at_wheel_columns(lo: int, width: int, k: int) -> None:
    parts = sieve.pieces(lo, lo + width, k)
    assert parts[0][0] == lo and parts[-1][1] == lo + width
    assert all(b + 1 == c and c % 30 == 0 for (_, b), (c, _) in zip(parts, parts[1:]))
    assert all(a <= b for a, b in parts)
    assert len(parts) == min(k, (lo + width) // 30 - lo // 30 + 1)
