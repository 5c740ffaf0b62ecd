"""Benchmark: pi(10^9) and pi(10^10) with 1 and 2 workers against Debian's `primesieve` CLI.

Runs our job service (`JobManager.count` on a `PoolScheduler` over a `ProcessPoolExecutor`)
and `primesieve N --count` with the same number of threads, in the same run, and prints the
times and the ratio ours/primesieve. `--ingest` also measures how long simulated log batches
(priority INGEST) wait for a worker with and without a prime job running.

    python bench/primes.py [--max-exp 10] [--workers 1,2] [--runs 3] [--ingest]
    python bench/primes.py --workers 2 --range 1e15 1000010000000000
    python bench/primes.py --first-job
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
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog  # noqa: E402

from logtallyd.primes import sieve  # noqa: E402
from logtallyd.primes.jobs import JobManager, PrimeConfig  # noqa: E402
from logtallyd.primes.numbers import parse_number  # noqa: E402
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


def time_primesieve(exe: str, lo: int, hi: int, threads: int) -> tuple[float, float, int]:
    """(wall s, CPU s, count) of one primesieve run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([exe, str(lo), str(hi), "--count", f"--threads={threads}", "--quiet"],
                         check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - t0, cpu, int(out.split()[-1])


def pool_cpu_s(ex: ProcessPoolExecutor) -> float:
    """CPU seconds used so far by the pool's workers and this process (Linux /proc).

    On a shared box wall time depends on what else runs; CPU time much less, so the bench
    prints both ratios.
    """
    tick = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in list(ex._processes or {}):  # noqa: SLF001 - the executor lists no workers otherwise
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


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


def median_line(label: str, ours: list[float], theirs: list[float]) -> str:
    line = f"{label}: ours median {statistics.median(ours):.2f} s ({', '.join(f'{t:.2f}' for t in ours)})"
    if theirs:
        line += (f", primesieve median {statistics.median(theirs):.2f} s "
                 f"({', '.join(f'{t:.2f}' for t in theirs)}), "
                 f"ratio {statistics.median(ours) / statistics.median(theirs):.2f}x")
    return line


async def run(args: argparse.Namespace) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    exe = ensure_primesieve()
    if exe is None:
        print("primesieve CLI not available: skipping the comparison")
    config = PrimeConfig(max_range=10**12, progress_interval_s=3600,
                         segment_bytes=args.segment_bytes or PrimeConfig().segment_bytes)
    print(f"segment_bytes={config.segment_bytes}  cpus={os.cpu_count()}  "
          f"load average {os.getloadavg()[0]:.2f} (other processes share these cores)")
    for workers in args.workers:
        with ProcessPoolExecutor(max_workers=workers, initializer=sieve.warm_up) as ex:
            scheduler = PoolScheduler(ex, workers)
            manager = JobManager(scheduler, config, lambda m: None)
            await manager.count(1, 10**8)  # start every worker (7 segments over all lanes)
            cases = [(f"pi(10^{k})", 1, 10**k, PI[k]) for k in range(9, args.max_exp + 1)]
            if args.range:
                lo, hi = args.range
                cases = [(f"[{lo}, {hi}]", lo, hi, None)]
            for label, lo, hi, known in cases:
                ours: list[float] = []
                theirs: list[float] = []
                ours_cpu: list[float] = []
                theirs_cpu: list[float] = []
                for _ in range(args.runs):  # interleaved, so both see the same load
                    cpu0 = pool_cpu_s(ex)
                    r = await manager.count(lo, hi)
                    ours_cpu.append(pool_cpu_s(ex) - cpu0)
                    ours.append(r["elapsed_s"])
                    if exe:
                        t, cpu, c = time_primesieve(exe, lo, hi, workers)
                        theirs.append(t)
                        theirs_cpu.append(cpu)
                        assert c == r["count"], (c, r)
                    assert known is None or r["count"] == known, r
                print(median_line(f"{label} workers={workers} count={r['count']}", ours, theirs)
                      + f"  [load {os.getloadavg()[0]:.2f}]", flush=True)
                print("  CPU " + median_line("seconds", ours_cpu, theirs_cpu), flush=True)
            if args.ingest and workers == max(args.workers):
                quiet = await ingest_waits(scheduler, 3.0)
                job = asyncio.create_task(manager.count(1, 10**12))
                await asyncio.sleep(0.5)
                loaded = await ingest_waits(scheduler, 5.0)
                await manager.close()
                await job
                print(f"ingest waits, no job:      {summary(quiet)}")
                print(f"ingest waits, job running: {summary(loaded)}")


_FIRST_JOB = """
import asyncio, sys, time
from concurrent.futures import ProcessPoolExecutor
from logtallyd.pool import worker
from logtallyd.primes.jobs import JobManager, PrimeConfig
from logtallyd.pool.scheduler import PoolScheduler

async def main():
    with ProcessPoolExecutor(max_workers=2, initializer=worker.warm_up) as ex:
        for f in [ex.submit(pow, 2, 2) for _ in range(4)]:
            f.result()  # both workers up, as after the daemon's start
        manager = JobManager(PoolScheduler(ex, 2), PrimeConfig(progress_interval_s=3600), lambda m: None)
        t0 = time.perf_counter()
        r = await manager.count(1, 10**6)
        print(time.perf_counter() - t0, r["count"])
asyncio.run(main())
"""


def first_job(runs: int) -> None:
    """Time of the first COUNT in fresh log workers: numba compiling (empty cache) vs loading its cache."""
    import tempfile
    root = Path(__file__).resolve().parents[1]
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            for times in (cold, warm):
                out = subprocess.run([sys.executable, "-c", _FIRST_JOB], env=env, cwd=root, check=True,
                                     capture_output=True, text=True).stdout.split()[-2:]
                assert out[1] == "78498", out
                times.append(float(out[0]))
    print(f"first COUNT 1..1e6 in fresh workers: empty numba cache median {statistics.median(cold):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in cold)}), cache filled median {statistics.median(warm):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in warm)})  [load {os.getloadavg()[0]:.2f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-exp", type=int, default=10, choices=(9, 10))
    ap.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("--ingest", action="store_true")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of ours and primesieve; medians")
    ap.add_argument("--range", nargs=2, type=_number, metavar=("LO", "HI"),
                    help="count [LO, HI] (e.g. 1e15 1e15+1e10 as 1e15 1000010000000000) instead of pi(10^k)")
    ap.add_argument("--segment-bytes", type=int, help="[primes] segment_bytes (default: the config's)")
    ap.add_argument("--first-job", action="store_true",
                    help="only time the first job in fresh workers, numba cache empty vs filled")
    args = ap.parse_args()
    if args.first_job:
        first_job(args.runs)
    else:
        asyncio.run(run(args))


def _number(text: str) -> int:
    value = parse_number(text)
    if isinstance(value, str):
        raise argparse.ArgumentTypeError(value)
    return value


if __name__ == "__main__":
    main()
