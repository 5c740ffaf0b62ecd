"""Throughput and peak memory of `logtallyd analyze` on a generated directory of logs.

    python bench/analyze.py [--lines 1000000] [--workers 1 2] [--files 4]

Writes `--lines` realistic mixed lines (the generator of bench/ingest.py: RFC 5424, RFC 3164,
access log with latency, app lines, JSON) into `--files` files (every other one gzip), runs
`logtallyd analyze DIR --json --workers N` as a subprocess for each N, and prints lines/s and the
peak RSS of the whole process tree (main + workers, sampled VmHWM summed).
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ingest_bench():
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def write_corpus(folder: Path, lines: int, files: int) -> int:
    ingest = _ingest_bench()
    per_file = lines // files
    total = 0
    for i in range(files):
        data = ingest.generate(per_file, seed=i + 1)
        total += len(data)
        if i % 2:
            with gzip.open(folder / f"app-{i}.log.gz", "wb", compresslevel=1) as f:
                f.write(data)
        else:
            (folder / f"app-{i}.log").write_bytes(data)
    return total


def run(folder: Path, workers: int, rss_tree_kb) -> tuple[float, int, dict]:
    code = "import sys; from logtallyd.offline.analyze import run_analyze; sys.exit(run_analyze(sys.argv[1:]))"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder), "--json", "--workers", str(workers)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, rss_tree_kb(proc.pid))
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    return elapsed, peak, json.loads(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    ingest = _ingest_bench()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        size = write_corpus(folder, args.lines, args.files)
        print(f"{args.lines:,} lines, {size / 1e6:.0f} MB uncompressed in {args.files} files")
        for workers in args.workers:
            elapsed, peak_kb, report = run(folder, workers, ingest.rss_tree_kb)
            print(f"workers={workers}: {report['received']:,} lines in {elapsed:.1f} s = "
                  f"{report['received'] / elapsed:,.0f} lines/s, {size / elapsed / 1e6:.1f} MB/s, "
                  f"peak RSS (tree) {peak_kb / 1024:.0f} MB; parsed {report['parsed']:,}, "
                  f"rejected {sum(report['rejected'].values()):,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
