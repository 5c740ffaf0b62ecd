"""Top-N accuracy and size per sketch size: a Zipf(1.1) stream (2M lines over 500k keys) and a flat
stream (2M distinct keys), fed as workers feed the main process (exact per-batch counts merged
into one `Tally`), for each lg size of the frequent-items sketch.

    python bench/topn.py [--lines 2000000] [--keys 500000] [--lg 8 9 10 11 12] [--budget 4096]
                         [--every-key] [--flat]

Zipf over 500k keys draws about 180k of them; `--every-key` makes all 500k appear (one line
each, the other lines drawn from the Zipf distribution), a harder stream for the sketch.

Prints, per lg size: whether the top 10 by lower bound is the true top 10, the largest relative
error of the lower and upper bounds over those 10, the width (upper - lower), how many values
have a lower bound above their true count (must be 0), the serialized size and the merge time.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from logtallyd.stats.tally import Tally  # noqa: E402

BATCH = 4000  # `[pipeline] batch_lines`


def zipf_keys(lines: int, keys: int, s: float, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, keys + 1, dtype=np.float64) ** s
    ranks = rng.choice(keys, size=lines, p=weights / weights.sum())
    names = rng.permutation(keys)  # the heavy keys are not the first names
    return [f"k{n}" for n in names[ranks].tolist()]


def feed(stream: list[str], budget: int, lg: int) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    for i in range(0, len(stream), BATCH):
        tally.merge(Tally(dict(collections.Counter(stream[i:i + BATCH]))), budget, lg)
    return tally, time.perf_counter() - started


def measure(name: str, stream: list[str], budget: int, lgs: list[int]) -> None:
    truth = collections.Counter(stream)
    top = [v for v, _ in sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
    print(f"{name}: {len(stream):,} lines, {len(truth):,} distinct, top-10 true counts "
          f"{truth[top[0]]:,} .. {truth[top[-1]]:,}")
    for lg in lgs:
        tally, seconds = feed(stream, budget, lg)
        rows = tally.rows(10)
        same = [r.value for r in rows] == top
        low = max(abs(r.lower - truth[r.value]) / truth[r.value] for r in rows)
        high = max(abs(r.upper - truth[r.value]) / truth[r.value] for r in rows)
        over = sum(r.lower > truth[r.value] for r in tally.rows())
        print(f"  lg {lg:2}: top10 {'same' if same else 'DIFFERENT'}, lower err {low:.3%}, upper err {high:.3%},"
              f" width {tally.max_error():,}, lower > true: {over}, serialized {len(tally.to_bytes()) / 1024:.0f} KiB,"
              f" merge {seconds:.2f} s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=500_000)
    ap.add_argument("--lg", type=int, nargs="+", default=[8, 9, 10, 11, 12])
    ap.add_argument("--budget", type=int, default=4096)
    ap.add_argument("--flat", action="store_true", help="also the stream of distinct keys")
    ap.add_argument("--every-key", action="store_true", help="every key appears at least once")
    args = ap.parse_args()
    if args.every_key:
        stream = zipf_keys(args.lines - args.keys, args.keys, 1.1) + [f"k{n}" for n in range(args.keys)]
        np.random.default_rng(2).shuffle(stream)  # type: ignore[arg-type]
        measure("zipf(1.1), every key once more", stream, args.budget, args.lg)
    else:
        measure("zipf(1.1)", zipf_keys(args.lines, args.keys, 1.1), args.budget, args.lg)
    if args.flat:
        measure("flat", [f"u{i}" for i in range(args.lines)], args.budget, args.lg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
