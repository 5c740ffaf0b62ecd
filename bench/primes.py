"""Benchmark: pi(10^9) and pi(10^10) with 1 and 2 workers against Debian's `primesieve` CLI.

Runs our job service (`JobManager.count` on a `PoolScheduler` over a `ProcessPoolExecutor`)
and `primesieve N --count` with the same number of threads, in the same run, and prints the
times and the ratio ours/primesieve. `--ingest` also measures how long simulated log batches
(priority INGEST) wait for a worker with and without a prime job running.

    python bench/primes.py [--max-exp 10] [--workers 1,2] [--ingest]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog  # noqa: E402

from logtallyd.primes import sieve  # noqa: E402
from logtallyd.primes.jobs import JobManager, PrimeConfig  # noqa: E402
from logtallyd.pool.scheduler import INGEST, PoolScheduler  # noqa: E402

PI = {9: 50847534, 10: 455052511}


def ensure_primesieve() -> str | None:
    """Path of the primesieve CLI, installing the Debian package if we can; None to skip it."""
    path = shutil.which("primesieve")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        for cmd in (["apt-get", "install", "-y", "primesieve"], ["apt-get", "update"],
                    ["apt-get", "install", "-y", "primesieve"]):
            subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if shutil.which("primesieve"):
                break
    return shutil.which("primesieve")


def time_primesieve(exe: str, n: int, threads: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = subprocess.run([exe, str(n), "--count", f"--threads={threads}", "--quiet"],
                         check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, int(out.split()[-1])


def busy(ms: float) -> int:
    """A stand-in for parsing one log batch: `ms` of CPU in a worker."""
    end = time.perf_counter() + ms / 1000
    k = 0
    while time.perf_counter() < end:
        k += 1
    return k


async def ingest_waits(scheduler: PoolScheduler, seconds: float, batch_ms: float = 2.0,
                       per_s: float = 100.0) -> list[float]:
    """Submit a batch every 1/per_s s; return how long each waited beyond its own CPU time."""
    waits: list[float] = []

    async def one() -> None:
        t0 = time.perf_counter()
        await scheduler.run(INGEST, busy, batch_ms)
        waits.append(time.perf_counter() - t0 - batch_ms / 1000)

    tasks = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(1 / per_s)
    await asyncio.gather(*tasks)
    return waits


def summary(waits: list[float]) -> str:
    q = statistics.quantiles(waits, n=100)
    return f"n={len(waits)} p50={q[49] * 1e3:.1f} ms p99={q[98] * 1e3:.1f} ms max={max(waits) * 1e3:.1f} ms"


async def run(args: argparse.Namespace) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    exe = ensure_primesieve()
    if exe is None:
        print("primesieve CLI not available: skipping the comparison")
    config = PrimeConfig(max_range=10**12, progress_interval_s=3600)
    print(f"segment_bytes={config.segment_bytes}  cpus={os.cpu_count()}  "
          f"load average {os.getloadavg()[0]:.2f} (other processes share these cores)")
    for workers in args.workers:
        with ProcessPoolExecutor(max_workers=workers, initializer=sieve.warm_up) as ex:
            scheduler = PoolScheduler(ex, workers)
            manager = JobManager(scheduler, config, lambda m: None)
            await manager.count(1, 10**8)  # start every worker (7 segments over all lanes)
            for k in range(9, args.max_exp + 1):
                r = await manager.count(1, 10**k)
                assert r["count"] == PI[k], r
                line = f"pi(10^{k}) workers={workers}: ours {r['elapsed_s']:.2f} s"
                if exe:
                    t, c = time_primesieve(exe, 10**k, workers)
                    assert c == PI[k], c
                    line += f", primesieve --threads={workers} {t:.2f} s, ratio {r['elapsed_s'] / t:.1f}x"
                print(line, flush=True)
            if args.ingest and workers == max(args.workers):
                quiet = await ingest_waits(scheduler, 3.0)
                job = asyncio.create_task(manager.count(1, 10**12))
                await asyncio.sleep(0.5)
                loaded = await ingest_waits(scheduler, 5.0)
                await manager.close()
                await job
                print(f"ingest waits, no job:      {summary(quiet)}")
                print(f"ingest waits, job running: {summary(loaded)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-exp", type=int, default=10, choices=(9, 10))
    ap.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("--ingest", action="store_true")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
