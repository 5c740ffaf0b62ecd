"""Prime jobs must not starve log ingestion: ingest rate and batch latency with and without a
long `PRIME COUNT` running on the same worker pool, in the same run.

    python bench/prime_ingest.py [--lines 400000] [--runs 3]

Log batches go to the pool ahead of prime segments (server/pool/scheduler.py), so a batch waits at
most for one running segment. Prints lines/s with no job and during a job (median, ratio), the
mean batch time from METRICS, and how far the job got meanwhile.
"""
from __future__ import annotations

import argparse
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import control, generate, send_parallel, split_connections  # noqa: E402
from bench.subscribers import TOKEN, start_server  # noqa: E402


def batch_mean_s(ctl: tuple[str, int]) -> float:
    text = control(ctl, "METRICS")["metrics"]
    total = float(re.search(r"^logtally_batch_seconds_sum (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    count = float(re.search(r"^logtally_batch_seconds_count (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    return total / count if count else 0.0


def measure(data: bytes, n: int, with_job: bool) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, tcp, ctl = start_server(Path(tmp))
        job = None
        if with_job:
            job = control(ctl, "PRIME COUNT 1 1e12", TOKEN)["job"]
            time.sleep(0.5)  # the job's lanes are busy before logs arrive
        started = time.perf_counter()
        send_parallel(tcp, split_connections(data, 4))
        while control(ctl, "STATS")["received"] < n:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        batch = batch_mean_s(ctl)
        percent = 0.0
        if job is not None:
            state = [j for j in control(ctl, "JOBS")["jobs"] if j["id"] == job][0]
            percent = state["percent"]
            assert control(ctl, f"CANCEL {job}", TOKEN) == {"cancelled": job}
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return n / elapsed, batch, percent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = generate(args.lines)
    free, busy = [], []
    for run in range(args.runs):
        free.append(measure(data, args.lines, False))
        busy.append(measure(data, args.lines, True))
        print(f"run {run + 1}: no job {free[-1][0]:,.0f} lines/s (batch {free[-1][1] * 1000:.1f} ms); "
              f"during PRIME COUNT 1 1e12 {busy[-1][0]:,.0f} lines/s (batch {busy[-1][1] * 1000:.1f} ms, "
              f"job reached {busy[-1][2]:.2f}%)")
    ratios = [b[0] / f[0] for f, b in zip(free, busy)]
    print(f"\nmedian: no job {statistics.median(r for r, _, _ in free):,.0f} lines/s, during a job "
          f"{statistics.median(r for r, _, _ in busy):,.0f} lines/s; ratio median {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
