"""Grouping accuracy of `logtallyd.stats.templates.template_of` on the loghub-2k corpus.

Usage: python bench/templates.py [--raw] [--show DATASET]

By default the message is the `Content` column of `X_2k.log_structured.csv` (the header fields
cut out by loghub's per-dataset regex), as in Drain's published figures. `--raw` uses the whole
raw line from `X_2k.log` instead (timestamps, hosts and levels included).
Grouping accuracy (as in Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP
2019): the share of lines whose predicted group has exactly the line set of their true group.
"""
from __future__ import annotations

import argparse
import collections
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logtallyd.stats.templates import template_of  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "loghub-2k"
DATASETS = ("Apache", "HDFS", "Hadoop", "HealthApp", "Linux", "OpenSSH", "Spark", "Zookeeper")
DRAIN = {"Apache": 1.0, "HDFS": 0.9975, "Hadoop": 0.9475, "HealthApp": 0.78, "Linux": 0.69,
         "OpenSSH": 0.7875, "Spark": 0.92, "Zookeeper": 0.9665}


def load(name: str, raw: bool = False) -> tuple[list[str], list[str]]:
    """(messages, ground-truth event ids) of one dataset."""
    folder = CORPUS / name
    with open(folder / f"{name}_2k.log_structured.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    truth = [row["EventId"] for row in rows]
    if raw:
        text = (folder / f"{name}_2k.log").read_text(encoding="utf-8")
        messages = text.replace("\r\n", "\n").split("\n")[: len(rows)]
    else:
        messages = [row["Content"] for row in rows]
    return messages, truth


def grouping_accuracy(predicted: list[str], truth: list[str]) -> float:
    truth_sets: dict[str, set[int]] = collections.defaultdict(set)
    pred_sets: dict[str, set[int]] = collections.defaultdict(set)
    for i, (p, t) in enumerate(zip(predicted, truth)):
        truth_sets[t].add(i)
        pred_sets[p].add(i)
    correct = 0
    for i, t in enumerate(truth):
        if pred_sets[predicted[i]] == truth_sets[t]:
            correct += 1
    return correct / len(truth)


def evaluate(raw: bool = False) -> dict[str, float]:
    out = {}
    for name in DATASETS:
        messages, truth = load(name, raw)
        out[name] = grouping_accuracy([template_of(m) for m in messages], truth)
    return out


def show_errors(name: str, raw: bool) -> None:
    """Print each wrong true group with the templates its lines got (for tuning)."""
    messages, truth = load(name, raw)
    pred = [template_of(m) for m in messages]
    by_truth: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    by_pred: dict[str, set[str]] = collections.defaultdict(set)
    for p, t in zip(pred, truth):
        by_truth[t][p] += 1
        by_pred[p].add(t)
    for t, preds in sorted(by_truth.items()):
        if len(preds) > 1 or any(len(by_pred[p]) > 1 for p in preds):
            print(f"{t} ({sum(preds.values())} lines)")
            for p, n in preds.most_common(6):
                print(f"    {n:5d}  {p[:150]}  <- also {sorted(by_pred[p] - {t})[:5]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", action="store_true", help="template the raw line, not Content")
    ap.add_argument("--show", metavar="DATASET", help="print the wrongly grouped templates of one dataset")
    args = ap.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 1
    if args.show:
        show_errors(args.show, args.raw)
        return 0
    scores = evaluate(args.raw)
    print(f"input: {'raw line' if args.raw else 'Content column'}")
    print(f"{'dataset':<10} {'logtally':>8} {'Drain':>8}")
    for name, score in scores.items():
        print(f"{name:<10} {score:8.4f} {DRAIN[name]:8.4f}")
    avg = sum(scores.values()) / len(scores)
    print(f"{'average':<10} {avg:8.4f} {sum(DRAIN.values()) / len(DRAIN):8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
