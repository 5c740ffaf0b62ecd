"""Throughput of the `logtallyd parse` command (parse, mask, group, print) on the loghub-2k lines.

Run: `python bench/parse_cli.py [--tree DIR ...] [--repeat N] [--runs N]`. Each tree (a checkout
whose package dirs are importable as `logtallyd`, default this one) runs as a subprocess on the
same inputs: the 8 `Content` columns and the 8 raw logs, each repeated N times. The figure is
lines / CPU seconds of the child, best of the runs, less the start-up time (an empty input).
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("LOGTALLY_CORPUS", ROOT.parent / "shared" / "corpus")) / "loghub-2k"


def inputs(repeat: int) -> dict[str, str]:
    content, raw = [], []
    for f in sorted(CORPUS.glob("*/*_2k.log_structured.csv")):
        with open(f, newline="", encoding="utf-8") as fh:
            content += [row["Content"].replace("\n", " ") for row in csv.DictReader(fh)]
    for f in sorted(CORPUS.glob("*/*_2k.log")):
        raw += f.read_text(encoding="utf-8", errors="replace").splitlines()
    return {"content": "\n".join(content * repeat) + "\n", "raw": "\n".join(raw * repeat) + "\n", "empty": ""}


def cpu_seconds(tree: Path, text: str, cwd: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "logtallyd", "parse"], input=text.encode(), stdout=subprocess.DEVNULL,
                   check=True, cwd=cwd, env={**os.environ, "PYTHONPATH": str(tree)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", type=Path, help="checkout to measure (repeatable)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 1
    trees = args.tree or [ROOT]
    texts = inputs(args.repeat)
    print(f"logtallyd parse, CPU time of the child, best of {args.runs}, inputs x{args.repeat}")
    with tempfile.TemporaryDirectory() as cwd:  # not the checkout: `-m` would import from the cwd
        for name in ("content", "raw"):
            lines = texts[name].count("\n")
            for tree in trees:
                start = min(cpu_seconds(tree, "", cwd) for _ in range(args.runs))
                best = min(cpu_seconds(tree, texts[name], cwd) for _ in range(args.runs))
                print(f"{name:<8} {lines:>8} lines  {str(tree):<28} {lines / (best - start):>10,.0f} lines/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
