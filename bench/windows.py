"""Benchmark of the aggregation core: worker fold cost, main-process merge throughput, window
query latency with full buckets, and memory under 1,000,000 distinct client IPs.

Usage: python bench/windows.py [--lines-per-s 3000] [--distinct 1000000]

0. sketch: serialized size, deserialize and merge cost of full DataSketches sketches.
1. worker: `Partial.add_many` (batches of 2,000) + `to_bytes`, per line (the cost a worker pays).
2. merge: `Stats.merge` of encoded batches of 2,000 lines (what the main process pays).
3. query: 16 minutes of "full load" (--lines-per-s lines each second, every second with
   hundreds of distinct IPs, paths, user agents and error templates, so every per-second sketch
   is full), then `report("15m")` and `top(field, 10, "15m")` timed (median and max of 20).
4. memory: --distinct distinct client IPs (and as many paths and user agents) streamed over
   1,800 event seconds (one batch per second; $BENCH_SECONDS), RSS above the start as it goes, snapshot size.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logtallyd.stats.aggregate import Partial  # noqa: E402
from logtallyd.records import SEVERITY_OF, Http, Record  # noqa: E402
from logtallyd.stats.windows import TOP_FIELDS, Stats, StatsConfig  # noqa: E402

T0 = 1_700_000_000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def make_records(n: int, second: int, salt: int) -> list[Record]:
    out = []
    for i in range(n):
        k = salt * n + i
        err = i % 10 == 0
        level = "ERROR" if err else "INFO"
        out.append(Record(
            format="access", message=f"upstream call {k % 997} failed with code {k}" if err else "ok",
            ts=second + (i / n), host=f"host{k % 50}", service=f"svc{k % 40}", level=level,
            severity=SEVERITY_OF[level],
            http=Http(ip=f"10.{(k >> 16) & 255}.{(k >> 8) & 255}.{k & 255}", method="GET",
                      path=f"/api/v1/items/{k % 5000}", status=(200, 404, 500)[k % 3], bytes=k % 5000,
                      user_agent=f"Mozilla/5.0 (X11; Linux x86_64) client/{k % 300}",
                      latency_ms=float(k % 1000)),
        ))
    return out


def encode_second(records: list[Record], second: int) -> bytes:
    p = Partial()
    templates = [f"upstream call <*> failed with code <*> #{r.http.bytes % 700}"  # type: ignore[union-attr]
                 if r.severity == 3 else None for r in records]
    p.add_many(records, [200] * len(records), [second] * len(records), templates)
    return p.to_bytes()


def bench_sketches() -> None:
    """Cost of the DataSketches operations a merge is made of (full sketches)."""
    from logtallyd.stats import sketches

    def per_op(fn, n: int = 2000) -> float:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1e6

    for lg in (8, 9, 10):
        full = sketches.topk_from_counts({f"10.0.{i >> 8}.{i & 255}": 1 + i % 7 for i in range(5000)}, lg)
        data = sketches.to_bytes(full)
        into = sketches.topk_from_counts({f"10.1.{i >> 8}.{i & 255}": 1 for i in range(5000)}, lg)
        print(f"sketch: frequent_strings lg={lg}: {len(data):,} bytes, deserialize "
              f"{per_op(lambda: sketches.topk_from_bytes(data)):.0f} us, merge into a full one "
              f"{per_op(lambda: into.merge(full), 500):.0f} us")
    q = sketches.quantiles_from_values([float(i % 997) for i in range(100_000)], 200)
    qdata = sketches.to_bytes(q)
    qinto = sketches.quantiles_from_values([float(i) for i in range(100_000)], 200)
    print(f"sketch: kll_floats k=200 (n=100,000): {len(qdata):,} bytes, deserialize "
          f"{per_op(lambda: sketches.quantiles_from_bytes(qdata)):.0f} us, merge "
          f"{per_op(lambda: qinto.merge(q), 500):.0f} us")


def bench_worker() -> None:
    records = make_records(20_000, T0, 1)
    seconds = [T0 + (0 if r.ts < T0 + 0.5 else 1) for r in records]  # type: ignore[operator]
    templates = ["tmpl <*>" if r.severity == 3 else None for r in records]
    t = time.perf_counter()
    p = Partial()
    for start in range(0, len(records), 2000):  # batches of 2,000 lines, as the pipeline cuts them
        end = start + 2000
        p.add_many(records[start:end], [200] * len(records[start:end]), seconds[start:end], templates[start:end])
    t_add = time.perf_counter() - t
    t = time.perf_counter()
    data = p.to_bytes()
    t_fold = time.perf_counter() - t
    print(f"worker: add_many {t_add / len(records) * 1e6:.2f} us/line, fold+encode {t_fold / len(records) * 1e6:.2f} "
          f"us/line, {len(data):,} bytes for {len(records):,} lines (2 seconds, all distinct IPs)")


def bench_merge() -> None:
    batches = []
    for b in range(50):
        second = T0 + b // 2  # two batches of 2,000 lines per second, each spans 1 second
        batches.append(encode_second(make_records(2000, second, b), second))
    stats = Stats(StatsConfig(), T0)
    t = time.perf_counter()
    for data in batches:
        stats.merge(Partial.from_bytes(data), T0 + 30)
    dt = time.perf_counter() - t
    print(f"merge: {len(batches) / dt:,.0f} batches/s = {len(batches) * 2000 / dt:,.0f} lines/s in the main "
          f"process ({dt / len(batches) * 1e3:.2f} ms per 2,000-line batch, decode included)")


def bench_query(lines_per_s: int) -> None:
    stats = Stats(StatsConfig(), T0)
    seconds = 16 * 60
    t = time.perf_counter()
    # Build one encoded second, re-use it with shifted seconds via distinct salts every 10 s.
    cache: dict[int, bytes] = {}
    for s in range(seconds):
        salt = s % 10
        if salt not in cache:
            cache[salt] = encode_second(make_records(lines_per_s, T0, salt), T0)
        p = Partial.from_bytes(cache[salt])
        p.buckets = {T0 + s: p.buckets[T0]}
        stats.merge(p, T0 + s)
    now = T0 + seconds
    print(f"query: filled {seconds} s x {lines_per_s:,} lines/s in {time.perf_counter() - t:.1f} s; "
          f"{len(stats.seconds)} second buckets, {len(stats.minutes)} minute rollups, RSS {rss_mb():.0f} MB")
    for name, fn in [("report 15m", lambda: stats.report("15m", now)),
                     ("report 5m", lambda: stats.report("5m", now)),
                     ("report all", lambda: stats.report("all", now))] + [
                        (f"top {f} 15m", (lambda f=f: stats.top(f, 10, "15m", now))) for f in TOP_FIELDS]:
        times = []
        for _ in range(20):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        print(f"  {name:<22} median {statistics.median(times):6.2f} ms   max {max(times):6.2f} ms")


def bench_memory(distinct: int) -> None:
    gc.collect()
    before = rss_mb()
    stats = Stats(StatsConfig(), T0)
    seconds = int(os.environ.get("BENCH_SECONDS", 1800))  # longer than the 15m horizon: old buckets are dropped, memory plateaus
    per_second = max(distinct // seconds, 1)
    t = time.perf_counter()
    for s in range(seconds):
        p = Partial()
        keys = range(s * per_second, (s + 1) * per_second)
        p.add_many(
            [Record(format="access", message="", ts=T0 + s,
                    http=Http(ip=f"{k >> 24 & 255}.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}",
                              status=404 if i % 4 == 0 else 200, path=f"/p/{k}",
                              user_agent=f"agent-{k}", latency_ms=float(i)))
             for i, k in enumerate(keys)],
            [100] * per_second, [T0 + s] * per_second, [None] * per_second,
        )
        stats.merge(Partial.from_bytes(p.to_bytes()), T0 + s)
        if s and s % 300 == 0:
            print(f"  after {s * per_second:>9,} distinct IPs: RSS {rss_mb() - before:6.1f} MB above start")
    gc.collect()
    grown, total = rss_mb() - before, rss_mb()
    snap = stats.to_bytes()
    print(f"memory: {seconds * per_second:,} distinct IPs (and paths, user agents) over {seconds} s in "
          f"{time.perf_counter() - t:.0f} s: RSS {grown:.1f} MB above start (process {total:.0f} MB), "
          f"{len(stats.seconds)} second buckets; snapshot {len(snap) / 1e6:.1f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines-per-s", type=int, default=3000)
    ap.add_argument("--distinct", type=int, default=1_000_000)
    ap.add_argument("--only", choices=("sketch", "worker", "merge", "query", "memory"))
    args = ap.parse_args()
    if args.only in (None, "sketch"):
        bench_sketches()
    if args.only in (None, "worker"):
        bench_worker()
    if args.only in (None, "merge"):
        bench_merge()
    if args.only in (None, "memory"):
        bench_memory(args.distinct)
    if args.only in (None, "query"):
        bench_query(args.lines_per_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
