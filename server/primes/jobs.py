"""The prime job service: COUNT/LIST/ISPRIME on the shared worker pool, with progress and CANCEL."""
# A COUNT splits its segments into runs of consecutive segments, one per lane (at most
# `scheduler.slots`), and feeds each run in order to the `PoolScheduler` at priority JOB, in
# tasks sized by the log traffic (`SLICE_S`), so log batches (priority INGEST) always get the
# next free worker and a CANCEL waits for at most one short task per lane. Each run merges its
# results in order (`sieve.merge`), then the runs merge.
# The lead wires this into the control protocol; bad requests raise `JobRejected` with the
# reason to send back.
from __future__ import annotations

import asyncio
import collections
import functools
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

import structlog

from logtallyd.primes import primality, sieve
from logtallyd.primes.config import PrimeConfig
from logtallyd.primes.numbers import parse_range
from logtallyd.pool.scheduler import INGEST, JOB, PoolScheduler

log = structlog.get_logger()

# While no log batch runs, a lane hands a worker as many consecutive segments at a time as took
# about this long the last time: each task costs a round trip through this process, during
# which the worker idles (~0.5 ms, a fifth of a 4 MiB segment near 1e10). While log batches run
# it hands at most one segment per task, since a batch that finds both workers busy waits for
# the first one to finish its task. Per pi(1e10), 2 workers, 4 MiB segments: SLICE_S 0 /
# 0.004 / 0.008 / 0.012 -> 1.11 / 1.11 / 0.93 / 0.90 s.
SLICE_S = 0.012
# Log batches come in bursts with gaps between them: short tasks until none has come for this long.
QUIET_S = 1.0
# While log batches run, a segment that took longer than this goes to a worker in up to
# MAX_SPLIT pieces (each a task; a lane's buckets carry over from one to the next). Wait of a
# log batch while a COUNT runs (`bench/primes.py --ingest`, p99, two runs each): 4 MiB tasks
# 12.2 / 19.1 ms, 2 MiB 9.9 / 6.6 ms.
INGEST_SLICE_S = 0.002
MAX_SPLIT = 4


class JobRejected(Exception):
    """A request the service refuses; str(exc) is the reason for the client."""


@dataclass
class _Job:
    id: str
    kind: str
    lo: int
    hi: int
    started: float
    state: str = "running"
    done_numbers: int = 0
    primes: int = 0
    finished: float | None = None
    task: asyncio.Task | None = None
    result: dict | None = None
    error: str | None = None
    in_flight: set = field(default_factory=set)

    def percent(self) -> float:
        return 100.0 * self.done_numbers / (self.hi - self.lo + 1)

    def eta_s(self, now: float) -> float | None:
        if self.state != "running" or not self.done_numbers:
            return None
        rate = self.done_numbers / max(now - self.started, 1e-9)
        return (self.hi - self.lo + 1 - self.done_numbers) / rate


class JobManager:
    def __init__(self, scheduler: PoolScheduler, config: PrimeConfig,
                 publish: Callable[[dict], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.scheduler = scheduler
        self.config = config
        self.publish = publish
        self.clock = clock
        self._jobs: dict[str, _Job] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._log_batches = 0  # for `_no_log_batches`: the last count seen, and when it moved
        self._log_batch_at = -QUIET_S

    def reconfigure(self, primes: PrimeConfig) -> None:
        """SIGHUP: limits apply to the next job; running jobs keep their segments."""
        self.config = primes

    def states(self) -> dict[str, int]:
        """How many jobs are in each state (for metrics)."""
        counts: dict[str, int] = {}
        for job in self._jobs.values():
            counts[job.state] = counts.get(job.state, 0) + 1
        return counts

    # -- validation -----------------------------------------------------------------------
    def check(self, kind: str, lo: int, hi: int) -> str | None:
        """Why a COUNT/LIST of [lo, hi] would be refused now, or None."""
        limit = self.config.max_list if kind == "list" else self.config.max_range
        err = parse_range(str(lo), str(hi), limit, self.config.max_value)
        if isinstance(err, str):
            return err
        if sum(j.state == "running" for j in self._jobs.values()) >= self.config.max_jobs:
            return f"too many jobs (limit {self.config.max_jobs}); CANCEL one or wait"
        return None

    def _new_job(self, kind: str, lo: int, hi: int) -> _Job:
        if (err := self.check(kind, lo, hi)) is not None:
            raise JobRejected(err)
        job = _Job(secrets.token_hex(4), kind, lo, hi, self.clock())
        self._jobs[job.id] = job
        log.info("prime_job_started", id=job.id, kind=kind, lo=lo, hi=hi)
        return job

    # -- COUNT ----------------------------------------------------------------------------
    def start_count(self, lo: int, hi: int) -> str:
        """Start counting primes in [lo, hi]; returns the job id at once (JobRejected if refused)."""
        job = self._new_job("count", lo, hi)
        job.task = asyncio.get_running_loop().create_task(self._run_count(job))
        return job.id

    async def count(self, lo: int, hi: int) -> dict:
        """Count and wait: the job_done result, or {"id", "state", "error"} if cancelled/failed."""
        job = self._jobs[self.start_count(lo, hi)]
        assert job.task is not None
        try:
            await asyncio.shield(job.task)
        except asyncio.CancelledError:
            if job.state == "running":  # our caller was cancelled, not the job
                self.cancel(job.id)
                raise
        return job.result or {"id": job.id, "state": job.state, "error": job.error}

    async def _run_count(self, job: _Job) -> None:
        t0 = time.perf_counter()
        try:
            # Read once: a SIGHUP during the job applies to the next one, and a segment size
            # changed between two segments would cut overlapping or missing ranges.
            segment_bytes = self.config.segment_bytes
            n_segs = sieve.segment_count(job.lo, job.hi, segment_bytes)
            workers = max(1, min(self.scheduler.slots, n_segs))
            last_publish = [self.clock()]

            # runs of consecutive segments, [next, end): one per lane to begin with; a lane that
            # has finished its run takes the second half of the longest one left, so both
            # workers stay busy to the end however the load fell
            cuts = [n_segs * w // workers for w in range(workers + 1)]
            runs = [[cuts[w], cuts[w + 1]] for w in range(workers)]
            parts: dict[int, sieve.SegmentStats] = {}  # by a run's first segment

            def steal() -> list[int] | None:
                victim = max(runs, key=lambda r: r[1] - r[0])
                left = victim[1] - victim[0]
                if left < 2:
                    return None
                run = [victim[0] + left // 2, victim[1]]
                victim[1] = run[0]
                runs.append(run)
                return run

            async def lane(run: list[int] | None) -> None:
                while run is not None:
                    # in order: the worker that ran the previous segment of the run keeps the
                    # large primes' positions (`sieve.lane_stats`)
                    first, name = run[0], f"{job.id}/{run[0]}"
                    merged: sieve.SegmentStats | None = None
                    per_segment = SLICE_S  # seconds a segment took in the last task
                    n = 1
                    while run[0] < run[1]:
                        i = run[0]
                        if self._no_log_batches():
                            n, split = min(2 * n, int(SLICE_S / per_segment)), 1
                        else:
                            n, split = 1, min(MAX_SPLIT, 1 + int(per_segment / INGEST_SLICE_S))
                        n = max(1, min(n, run[1] - i))
                        run[0] += n
                        last = run[0] == run[1]
                        a = sieve.segment_range(job.lo, job.hi, i, segment_bytes)[0]
                        b = sieve.segment_range(job.lo, job.hi, i + n - 1, segment_bytes)[1]
                        t = time.perf_counter()
                        for lo, hi in sieve.pieces(a, b, split):
                            r = await self.scheduler.run(JOB, sieve.lane_stats, lo, hi, job.hi, name,
                                                         last and hi == b, segment_bytes)
                            merged = r if merged is None else sieve.merge(merged, r)
                            job.done_numbers += hi - lo + 1
                            job.primes += r.count
                            now = self.clock()
                            if now - last_publish[0] >= self.config.progress_interval_s:
                                last_publish[0] = now
                                self.publish({"type": "job_progress", "id": job.id,
                                              "percent": round(job.percent(), 4), "primes": job.primes,
                                              "eta_s": _round(job.eta_s(now))})
                        per_segment = max((time.perf_counter() - t) / n, 1e-6)
                    if merged is not None:
                        parts[first] = merged
                    run = steal()

            lanes = [asyncio.create_task(lane(run)) for run in list(runs)]
            try:
                await asyncio.gather(*lanes)
            except BaseException:
                for t in lanes:  # one lane failed: stop the others too
                    t.cancel()
                raise
            # the runs tile the segments: merged in order of their first segment
            total = functools.reduce(sieve.merge, [parts[k] for k in sorted(parts)])
            elapsed = time.perf_counter() - t0
            job.result = {
                "id": job.id, "kind": "count", "lo": job.lo, "hi": job.hi,
                "count": total.count, "first": total.first, "last": total.last,
                "largest_gap": total.gap, "largest_gap_after": total.gap_after,
                "twin_pairs": total.twins, "elapsed_s": round(elapsed, 6),
                "numbers_per_s": round((job.hi - job.lo + 1) / max(elapsed, 1e-9)),
                "segments": n_segs, "workers": workers,
            }
            self._finish(job, "done")
            self.publish({"type": "job_done", **job.result})
        except asyncio.CancelledError:
            if job.state == "running":  # cancelled from outside CANCEL (close, loop shutdown)
                self._finish(job, "cancelled")
                self.publish({"type": "job_cancelled", "id": job.id})
        except Exception as exc:  # a worker crashed or the pool broke: report, don't kill the loop
            job.error = f"{type(exc).__name__}: {exc}"
            self._finish(job, "failed")
            log.error("prime_job_failed", id=job.id, error=job.error)
            self.publish({"type": "job_failed", "id": job.id, "error": job.error})

    def _no_log_batches(self) -> bool:
        """Whether the pool has been given no log batch for `QUIET_S` seconds."""
        sched = self.scheduler
        # handed to the pool so far: done, running or waiting for a place
        batches = sched.completed[INGEST] + sched.busy_by_priority[INGEST] + sched.waiting(INGEST)
        now = time.monotonic()
        if batches != self._log_batches or sched.busy_by_priority[INGEST] or sched.waiting(INGEST):
            self._log_batches, self._log_batch_at = batches, now
        return now - self._log_batch_at >= QUIET_S

    def _finish(self, job: _Job, state: str) -> None:
        if job.state != "running":
            return
        job.state = state
        job.finished = self.clock()
        log.info("prime_job_" + state, id=job.id, elapsed_s=round(job.finished - job.started, 3))
        self._finished.append(job.id)
        while len(self._finished) > self.config.finished_kept:
            self._jobs.pop(self._finished.popleft(), None)

    async def wait(self, job_id: str, timeout: float) -> dict | None:
        """The job's result once it ends within `timeout` seconds, else None (it keeps running)."""
        job = self._jobs.get(job_id)
        if job is None or job.task is None:
            return None
        done, _ = await asyncio.wait({job.task}, timeout=timeout)
        if not done:
            return None
        return job.result or {"id": job.id, "state": job.state, "error": job.error}

    # -- LIST -----------------------------------------------------------------------------
    async def list_primes(self, lo: int, hi: int) -> AsyncIterator[list[int]]:
        """The primes in [lo, hi] in order, in chunks of <= `list_chunk` (JobRejected if refused)."""
        job = self._new_job("list", lo, hi)
        t0 = time.perf_counter()
        pending: collections.deque[tuple[asyncio.Task, tuple[int, int]]] = collections.deque()
        try:
            segs = iter(sieve.segments(lo, hi, self.config.segment_bytes))
            loop = asyncio.get_running_loop()

            def submit() -> None:
                if job.state == "running" and (seg := next(segs, None)) is not None:
                    t = loop.create_task(self.scheduler.run(JOB, sieve.list_primes, *seg, hi))
                    pending.append((t, seg))
                    job.in_flight.add(t)
                    t.add_done_callback(job.in_flight.discard)

            for _ in range(max(1, self.scheduler.slots)):
                submit()
            while pending:
                head, (a, b) = pending.popleft()
                try:
                    raw = await head
                except asyncio.CancelledError:
                    if head.cancelled() and job.state == "cancelled":
                        return  # CANCEL dropped this segment: end the stream quietly
                    raise
                submit()
                primes = list(struct.unpack(f"<{len(raw) // 8}q", raw))
                job.done_numbers += b - a + 1
                job.primes += len(primes)
                chunk = self.config.list_chunk
                for k in range(0, len(primes), chunk):
                    if job.state != "running":
                        return
                    yield primes[k:k + chunk]
            job.result = {"id": job.id, "kind": "list", "lo": lo, "hi": hi, "count": job.primes,
                          "elapsed_s": round(time.perf_counter() - t0, 6)}
            self._finish(job, "done")
        finally:
            for t, _ in pending:
                t.cancel()
            if job.state == "running":  # the consumer stopped reading (aclose) or was cancelled
                self._finish(job, "cancelled")
                self.publish({"type": "job_cancelled", "id": job.id})

    # -- ISPRIME --------------------------------------------------------------------------
    async def isprime(self, n: int) -> dict:
        """Primality of n, computed in the pool: see `primality.check` for the fields."""
        t0 = time.perf_counter()
        answer = await self.scheduler.run(JOB, primality.check, n)
        return {**answer, "elapsed_s": round(time.perf_counter() - t0, 6)}

    # -- JOBS / CANCEL / shutdown -----------------------------------------------------------
    def cancel(self, job_id: str) -> bool:
        """Stop a running job: no new segments start; the running ones end within ~10 ms."""
        job = self._jobs.get(job_id)
        if job is None or job.state != "running":
            return False
        self._finish(job, "cancelled")
        self.publish({"type": "job_cancelled", "id": job.id})
        # COUNT: its task and lanes; LIST: the queued segments (the consumer's stream then ends)
        if job.task is not None:
            job.task.cancel()
        for t in list(job.in_flight):
            t.cancel()
        return True

    def jobs(self) -> list[dict]:
        """JOBS: running and recently finished jobs, oldest first."""
        now = self.clock()
        return [{
            "id": j.id, "kind": j.kind, "lo": j.lo, "hi": j.hi, "state": j.state,
            "percent": round(100.0 if j.state == "done" else j.percent(), 4),
            "primes_so_far": j.primes, "eta_s": _round(j.eta_s(now)),
            "elapsed_s": round((j.finished or now) - j.started, 3),
        } for j in self._jobs.values()]

    async def close(self) -> None:
        """Cancel every running job and wait for them to stop (server shutdown)."""
        tasks = [j.task for j in self._jobs.values() if j.state == "running" and j.task]
        for j in list(self._jobs.values()):
            self.cancel(j.id)
        await asyncio.gather(*tasks, return_exceptions=True)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)
