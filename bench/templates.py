"""Grouping accuracy of logtally's templates (masks, then grouping) on the loghub-2k corpus.

Usage: python bench/templates.py [--raw] [--show DATASET] [--cv]

By default the message is the `Content` column of `X_2k.log_structured.csv` (the header fields
cut out by loghub's per-dataset regex), as in Drain's published figures. `--raw` uses the whole
raw line from `X_2k.log` instead (timestamps, hosts and levels included).
Grouping accuracy (as in Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP
2019): the share of lines whose predicted group has exactly the line set of their true group.
`--cv` chooses the masking rules and the grouping threshold on one half of the datasets and
scores the choice on the other half (both ways), then on all 8; the shipped defaults are the
full-set choice. Set LOGTALLY_CORPUS to a folder holding `loghub-2k/` to read it elsewhere.
"""
from __future__ import annotations

import argparse
import collections
import csv
import itertools
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logtallyd.stats.grouping import THRESHOLD, group_templates  # noqa: E402
from logtallyd.stats.templates import RULES, TemplateRules, compile_rules  # noqa: E402

CORPUS = Path(os.environ.get("LOGTALLY_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus")) / "loghub-2k"
DATASETS = ("Apache", "HDFS", "Hadoop", "HealthApp", "Linux", "OpenSSH", "Spark", "Zookeeper")
HALVES = (DATASETS[:4], DATASETS[4:])  # alphabetical halves for the cross-validation
THRESHOLDS = range(2, 9)
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


def predict(messages: list[str], rules: TemplateRules = RULES, threshold: int = THRESHOLD) -> list[str]:
    """The template of each message: masked one by one, then grouped over the whole set."""
    template_of = compile_rules(rules)
    masked = [template_of(m) for m in messages]
    groups = group_templates(masked, threshold)
    return [groups[t] for t in masked]


def evaluate(raw: bool = False, rules: TemplateRules = RULES, threshold: int = THRESHOLD) -> dict[str, float]:
    out = {}
    for name in DATASETS:
        messages, truth = load(name, raw)
        out[name] = grouping_accuracy(predict(messages, rules, threshold), truth)
    return out


def candidates() -> list[tuple[TemplateRules, int]]:
    """Every combination of the mask switches with every grouping threshold."""
    fields = TemplateRules.__struct_fields__
    return [(TemplateRules(**dict(zip(fields, bits))), k)
            for bits in itertools.product((False, True), repeat=len(fields)) for k in THRESHOLDS]


def choose(scores: dict[tuple[TemplateRules, int], dict[str, float]], names: tuple[str, ...]) -> tuple[TemplateRules, int]:
    """The candidate with the best average on `names`, to 3 decimals (about 2 lines a set); ties go
    to the most masking switches on (a value's syntax recognised costs nothing measured), then
    the best worst set, then the lowest threshold."""
    def rank(c: tuple[TemplateRules, int]) -> tuple:
        s = [scores[c][n] for n in names]
        return (-round(sum(s) / len(s), 3), -sum(switches(c[0])), -round(min(s), 6), c[1], switches(c[0]))
    return min(scores, key=rank)


def switches(rules: TemplateRules) -> tuple[bool, ...]:
    return tuple(getattr(rules, f) for f in TemplateRules.__struct_fields__)


def cross_validate(raw: bool = False) -> dict[str, tuple[TemplateRules, int, dict[str, float]]]:
    """{"A->B", "B->A", "full"}: the candidate chosen on the training sets, and its per-set scores on the test sets."""
    data = {name: load(name, raw) for name in DATASETS}
    scores: dict[tuple[TemplateRules, int], dict[str, float]] = {}
    for rules in {r for r, _ in candidates()}:
        template_of = compile_rules(rules)
        masked = {name: [template_of(m) for m in msgs] for name, (msgs, _) in data.items()}
        for k in THRESHOLDS:
            scores[rules, k] = {}
            for name, (_, truth) in data.items():
                groups = group_templates(masked[name], k)
                scores[rules, k][name] = grouping_accuracy([groups[t] for t in masked[name]], truth)
    a, b = HALVES
    out = {}
    for label, train, test in (("A->B", a, b), ("B->A", b, a), ("full", DATASETS, DATASETS)):
        rules, k = choose(scores, train)
        out[label] = (rules, k, {name: scores[rules, k][name] for name in test})
    return out


def show_errors(name: str, raw: bool) -> None:
    """Print each wrong true group with the templates its lines got (for tuning)."""
    messages, truth = load(name, raw)
    pred = predict(messages)
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
    ap.add_argument("--cv", action="store_true", help="cross-validate the rules and threshold over the two halves")
    args = ap.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 1
    if args.show:
        show_errors(args.show, args.raw)
        return 0
    if args.cv:
        for label, (rules, k, scores) in cross_validate(args.raw).items():
            on = [f for f in TemplateRules.__struct_fields__ if getattr(rules, f)]
            avg = sum(scores.values()) / len(scores)
            print(f"{label:<5} chosen: rules on={on} threshold={k}; score {avg:.4f} on "
                  + ", ".join(f"{n} {v:.4f}" for n, v in scores.items()))
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
