"""Prime job service on a real 2-worker ProcessPoolExecutor: results, progress, JOBS, CANCEL, limits."""
from __future__ import annotations

import asyncio
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from typing import AsyncIterator

import pytest

from logtallyd.primes import sieve
from logtallyd.primes.jobs import JobManager, JobRejected, PrimeConfig
from logtallyd.pool.scheduler import INGEST, PoolScheduler
from tests.conftest import require_tool

SMALL_SEGMENTS = 1 << 14  # 61,440 numbers per segment: many segments, quick


@pytest.fixture(scope="module")
def executor():
    with ProcessPoolExecutor(max_workers=2) as ex:
        yield ex


class Harness:
    def __init__(self, executor: ProcessPoolExecutor, **config: object) -> None:
        self.scheduler = PoolScheduler(executor, slots=2)
        self.messages: list[dict] = []
        self.manager = JobManager(self.scheduler, PrimeConfig(**config), self.messages.append)

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]


@pytest.fixture
async def harness(executor) -> AsyncIterator[Harness]:
    h = Harness(executor, progress_interval_s=0.0, segment_bytes=SMALL_SEGMENTS)
    yield h
    await h.manager.close()


def reference(lo: int, hi: int) -> sieve.SegmentStats:
    return sieve.segment_stats(lo, hi, sieve.base_primes(hi))


async def test_count_result_and_progress(harness: Harness) -> None:
    r = await harness.manager.count(1, 2_000_000)
    ref = reference(1, 2_000_000)
    assert r["count"] == ref.count == 148933
    assert (r["first"], r["last"], r["twin_pairs"]) == (2, 1999993, ref.twins)
    assert (r["largest_gap"], r["largest_gap_after"]) == (ref.gap, ref.gap_after) == (132, 1357201)
    assert r["segments"] == len(list(sieve.segments(1, 2_000_000, SMALL_SEGMENTS))) > 2
    assert r["workers"] == 2 and r["numbers_per_s"] > 0
    progress = harness.of_type("job_progress")
    assert progress and all(m["id"] == r["id"] for m in progress)
    assert [m["primes"] for m in progress] == sorted(m["primes"] for m in progress)
    done = harness.of_type("job_done")
    assert len(done) == 1 and done[0]["count"] == 148933
    [listed] = harness.manager.jobs()
    assert (listed["id"], listed["state"], listed["percent"]) == (r["id"], "done", 100.0)


async def test_jobs_lists_a_running_job_and_cancel_stops_it(harness: Harness) -> None:
    m = harness.manager
    job_id = m.start_count(0, 10**10)
    while not harness.of_type("job_progress"):
        await asyncio.sleep(0.01)
    [row] = m.jobs()
    assert (row["id"], row["kind"], row["lo"], row["hi"], row["state"]) == (
        job_id, "count", 0, 10**10, "running")
    assert 0 < row["percent"] < 100 and row["primes_so_far"] > 0 and row["eta_s"] > 0
    t0 = time.monotonic()
    assert m.cancel(job_id) is True
    while harness.scheduler.busy or not harness.of_type("job_cancelled"):
        await asyncio.sleep(0.005)
    assert time.monotonic() - t0 < 1.0
    assert harness.of_type("job_cancelled") == [{"type": "job_cancelled", "id": job_id}]
    assert m.jobs()[0]["state"] == "cancelled"
    assert m.cancel(job_id) is False and m.cancel("nope") is False
    # the freed workers serve log batches at once
    assert await harness.scheduler.run(INGEST, pow, 2, 10) == 1024


async def test_too_many_jobs(harness: Harness) -> None:
    m = harness.manager
    a, b = m.start_count(0, 10**11), m.start_count(0, 10**11)
    with pytest.raises(JobRejected, match="too many jobs"):
        m.start_count(0, 10)
    with pytest.raises(JobRejected, match="too many jobs"):
        await m.count(0, 10)
    assert m.cancel(a)
    await asyncio.sleep(0)
    c = m.start_count(0, 10**11)  # a slot is free again
    assert {j["id"] for j in m.jobs() if j["state"] == "running"} == {b, c}
    await m.close()
    assert all(j["state"] == "cancelled" for j in m.jobs())


async def test_bad_input_is_refused_with_a_reason(executor) -> None:
    h = Harness(executor, max_range=1000, max_list=100, max_value=10**6)
    m = h.manager
    with pytest.raises(JobRejected, match="below lo"):
        m.start_count(10, 9)
    with pytest.raises(JobRejected, match="range too large"):
        m.start_count(0, 1001)
    assert (await m.count(0, 1000))["count"] == 168  # exactly at the limit
    with pytest.raises(JobRejected, match="range too large"):
        async for _ in m.list_primes(0, 101):
            pass
    with pytest.raises(JobRejected, match="hi too large"):
        m.start_count(10**6, 10**6 + 1)


async def test_list_streams_primes_in_order(harness: Harness) -> None:
    chunks = [c async for c in harness.manager.list_primes(999_000, 2_000_000)]
    primes = [p for c in chunks for p in c]
    # reference: trial division by the primes up to sqrt(2e6)
    small = [d for d in range(2, 1415) if all(d % q for q in range(2, int(d ** 0.5) + 1))]
    assert primes == [n for n in range(999_000, 2_000_001) if all(n % d for d in small)]
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= 10_000
    assert harness.manager.jobs()[0]["state"] == "done"


async def test_list_cancel_ends_the_stream(harness: Harness) -> None:
    m = harness.manager
    got = 0
    async for chunk in m.list_primes(0, 10**7):
        got += len(chunk)
        if got >= 20_000:
            [row] = m.jobs()
            assert m.cancel(row["id"])
    assert got < 664579
    assert m.jobs()[0]["state"] == "cancelled" and harness.of_type("job_cancelled")


async def test_isprime_in_the_pool(harness: Harness) -> None:
    r = await harness.manager.isprime(2**607 - 1)
    assert (r["prime"], r["certainty"]) == (True, "probable")
    r = await harness.manager.isprime(3825123056546413051)
    assert (r["prime"], r["certainty"]) == (False, "deterministic")


async def test_segments_in_flight_are_bounded_and_ingest_gets_through(harness: Harness) -> None:
    m, sched = harness.manager, harness.scheduler
    job_id = m.start_count(0, 10**10)
    for _ in range(5):
        await asyncio.sleep(0.01)
        # one job never holds more than `slots` segments, running or queued
        assert sched.busy_by_priority[1] + sched.waiting(1) <= 2
        assert await sched.run(INGEST, pow, 3, 4) == 81  # a log batch runs while the job does
    assert m.jobs()[0]["state"] == "running"
    done_before = sched.completed[INGEST]
    assert m.cancel(job_id)
    assert done_before == 5


async def test_while_log_batches_run_a_count_goes_in_pieces_of_segments_with_the_same_answer(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from logtallyd.primes import jobs

    monkeypatch.setattr(jobs, "INGEST_SLICE_S", 1e-12)  # every segment in MAX_SPLIT pieces
    m, sched = harness.manager, harness.scheduler
    lo, hi = 10**9, 10**9 + 2_000_000
    task = asyncio.create_task(m.count(lo, hi))
    while not task.done():
        assert await sched.run(INGEST, pow, 3, 4) == 81
    r = task.result()
    assert r["count"] == reference(lo, hi).count
    assert sched.completed[1] == jobs.MAX_SPLIT * r["segments"]  # one task per piece


async def test_without_log_batches_a_count_hands_out_several_segments_per_task(harness: Harness) -> None:
    r = await harness.manager.count(1, 20_000_000)
    assert r["count"] == 1270607
    assert harness.scheduler.completed[1] < r["segments"]


async def test_count_of_a_cancelled_job_says_so(harness: Harness) -> None:
    m = harness.manager
    task = asyncio.create_task(m.count(0, 10**10))
    while not m.jobs():
        await asyncio.sleep(0.005)
    m.cancel(m.jobs()[0]["id"])
    r = await asyncio.wait_for(task, 1.0)
    assert r["state"] == "cancelled" and r["id"] == m.jobs()[0]["id"]


async def test_a_broken_pool_fails_the_job_not_the_loop() -> None:
    ex = ProcessPoolExecutor(max_workers=1)
    ex.shutdown()
    messages: list[dict] = []
    m = JobManager(PoolScheduler(ex, slots=1), PrimeConfig(), messages.append)
    r = await m.count(0, 100)
    assert r["state"] == "failed" and "RuntimeError" in r["error"]
    assert [x["type"] for x in messages] == ["job_failed"]


def test_config_from_toml_table() -> None:
    import msgspec
    c = msgspec.convert({"max_jobs": 3, "segment_bytes": 1 << 20}, PrimeConfig)
    assert (c.max_jobs, c.segment_bytes, c.max_range, c.max_list) == (3, 1 << 20, 10**12, 10**7)
    for bad in ({"max_jobs": 0}, {"segment_bytes": 8}, {"nope": 1}, {"max_range": -1}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, PrimeConfig)


def test_max_value_has_its_range_on_the_field() -> None:
    import msgspec
    top = 10**16
    assert msgspec.convert({"max_value": top}, PrimeConfig).max_value == top == PrimeConfig().max_value
    with pytest.raises(msgspec.ValidationError, match="max_value"):
        msgspec.convert({"max_value": top + 1}, PrimeConfig)


async def test_count_and_list_at_the_largest_hi_against_primesieve(executor) -> None:
    # hi exactly at the field's upper bound (10**16): 5.76 M sieving primes per worker, and
    # several lanes' segments, each checked against the primesieve CLI
    exe = require_tool("primesieve")
    top = PrimeConfig().max_value
    h = Harness(executor, segment_bytes=1 << 20)
    lo = top - 10**7
    r = await h.manager.count(lo, top)
    out = subprocess.run([exe, str(lo), str(top), "--count", "--quiet"], capture_output=True,
                         text=True, check=True).stdout
    assert r["count"] == int(out.split()[-1]) and r["workers"] == 2 and r["segments"] > 2
    listed = [p for c in [c async for c in h.manager.list_primes(top - 10_000, top)] for p in c]
    out = subprocess.run([exe, str(top - 10_000), str(top), "--print"], capture_output=True,
                         text=True, check=True).stdout
    assert listed == [int(x) for x in out.split()] and listed[-1] == r["last"]
    with pytest.raises(JobRejected, match="hi too large"):
        h.manager.start_count(top - 10, top + 1)


async def test_a_lane_held_up_by_log_batches_is_split_and_the_runs_merge_in_order(harness: Harness) -> None:
    # One worker is busy with a long log batch when the job starts, so the other lane finishes
    # its run first and takes over the second half of the held-up one (and so on): however the
    # runs were cut, they merge to the plain sieve's answer.
    sched = harness.scheduler
    blocker = asyncio.create_task(sched.run(INGEST, time.sleep, 0.4))
    await asyncio.sleep(0.05)
    lo, hi = 10**12, 10**12 + 3_000_000
    r = await harness.manager.count(lo, hi)
    await blocker
    ref = reference(lo, hi)
    assert (r["count"], r["first"], r["last"], r["twin_pairs"]) == (ref.count, ref.first, ref.last, ref.twins)
    assert (r["largest_gap"], r["largest_gap_after"]) == (ref.gap, ref.gap_after)
    assert r["segments"] == sieve.segment_count(lo, hi, SMALL_SEGMENTS) > 40


async def test_a_reload_that_changes_segment_bytes_leaves_a_running_count_alone(executor) -> None:
    # SIGHUP applies `[primes]` to the next job: a running one must keep cutting its range the
    # way it began, or its segments overlap or leave gaps.
    h = Harness(executor, progress_interval_s=0.0, segment_bytes=SMALL_SEGMENTS)
    reloaded = PrimeConfig(progress_interval_s=0.0, segment_bytes=4 * SMALL_SEGMENTS)

    def on_message(message: dict) -> None:
        h.messages.append(message)
        if message["type"] == "job_progress" and h.manager.config is not reloaded:
            h.manager.reconfigure(reloaded)  # after the first segment

    h.manager.publish = on_message
    try:
        r = await h.manager.count(1, 3_000_000)
    finally:
        await h.manager.close()
    ref = reference(1, 3_000_000)
    assert h.manager.config is reloaded
    assert (r["count"], r["twin_pairs"], r["largest_gap"]) == (ref.count, ref.twins, ref.gap)
    assert ref.count == 216816
    assert r["segments"] == len(list(sieve.segments(1, 3_000_000, SMALL_SEGMENTS)))
