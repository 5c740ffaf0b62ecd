"""Template grouping (logtallyd.stats.grouping): a word varying like a value is masked, the answer
depends only on the set of masked templates, and the threshold sits exactly at its value."""
from __future__ import annotations

import random

import pytest

from logtallyd.stats.grouping import THRESHOLD, group_templates
from logtallyd.stats.templates import template_of

USERS = ["admin", "oracle", "test", "guest", "pi", "ubuntu", "nagios", "ftp"]


@pytest.mark.parametrize(("names", "merged"), [(THRESHOLD - 1, False), (THRESHOLD, True)])
def test_a_position_is_variable_at_threshold_distinct_words(names: int, merged: bool) -> None:
    masked = [template_of(f"Invalid user {u} from 10.0.0.{i}") for i, u in enumerate(USERS[:names])]
    masked += [template_of("Accepted password from 10.0.0.9"), template_of("Connection closed by 10.0.0.9")]
    groups = group_templates(masked)
    got = {groups[t] for t in masked[:names]}
    assert got == ({"Invalid user <*> from <*>"} if merged else set(masked[:names]))
    assert groups["Accepted password from <*>"] == "Accepted password from <*>"


def test_words_with_few_values_stay_constant() -> None:
    masked = [f"Connection {w} for session <*>" for w in ("opened", "closed")] * 5
    masked += [f"session <*> state {s}" for s in ("up", "down", "idle")]
    groups = group_templates(masked)
    assert groups == {t: t for t in masked}


def test_lengths_never_merge_and_wildcards_stay() -> None:
    masked = [f"job {w} done" for w in USERS] + ["job <*> done in <*>", "<*> <*>"]
    groups = group_templates(masked)
    assert {groups[f"job {w} done"] for w in USERS} == {"job <*> done"}
    assert groups["job <*> done in <*>"] == "job <*> done in <*>"
    assert groups["<*> <*>"] == "<*> <*>"


def test_the_answer_is_a_function_of_the_set() -> None:
    """Any order, any duplicates, any split among workers whose sets are then joined: one answer."""
    rng = random.Random(5)
    masked = [f"user {u} logged in from <*>" for u in USERS] + [f"disk {d} full" for d in ("sda", "sdb")]
    masked += [f"cache {w} after <*>" for w in ("hit", "miss", "flush", "evict", "warm")]
    want = group_templates(masked)
    for _ in range(50):
        parts: list[set[str]] = [set() for _ in range(rng.randint(1, 4))]
        for t in masked * rng.randint(1, 3):
            rng.choice(parts).add(t)
        union = list(set().union(*parts))
        rng.shuffle(union)
        assert group_templates(union) == want
    assert want["user admin logged in from <*>"] == "user <*> logged in from <*>"
    assert want["disk sda full"] == "disk sda full"
    assert want["cache hit after <*>"] == "cache <*> after <*>"


def test_no_input_raises() -> None:
    rng = random.Random(9)
    alphabet = ["a", "b", "<*>", "", " ", "x1", "é"]
    for _ in range(500):
        masked = [" ".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(0, 30))]
        groups = group_templates(masked)
        assert set(groups) == set(masked)
        for t, g in groups.items():
            assert len(g.split(" ")) == len(t.split(" "))


def test_http_request_templates_are_not_regrouped() -> None:
    masked = [f"{m} /api/{p} 500" for m in ("GET", "POST", "PUT", "DELETE", "PATCH") for p in ("a", "b", "c", "d", "e")]
    assert group_templates(masked) == {t: t for t in masked}


def test_top_rows_sum_per_group_with_their_members() -> None:
    from logtallyd.stats.grouping import group_rows

    rows = [(f"user {u} logged in", 10 + i, 10 + i, 10 + i) for i, u in enumerate(USERS[:4])]
    rows += [("disk full", 50, 48, 50)]
    assert group_rows(rows) == [
        ("disk full", 50, 48, 50, ["disk full"]),
        ("user <*> logged in", 46, 46, 46, [f"user {u} logged in" for u in USERS[:4]]),
    ]


def test_same_answer_in_processes_with_different_hash_seeds() -> None:
    """Sets iterate in a per-process order (PYTHONHASHSEED); the grouping must not depend on it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import json, sys; from logtallyd.stats.grouping import group_templates as g; "
            "t = json.load(sys.stdin); print(json.dumps(sorted(g(t).items())))")
    masked = [f"user {u} from <*>" for u in USERS] + [f"{a} {b} done" for a in "xyzw" for b in "pq"]
    masked += [f"state {s} to {t}" for s in ("up", "down", "idle", "gone") for t in ("on", "off")]
    outs = {
        subprocess.run([sys.executable, "-c", code], input=json.dumps(masked), capture_output=True, text=True,
                       check=True, cwd=root, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("0", "1", "2", "3", "4")
    }
    assert len(outs) == 1 and json.loads(outs.pop()) == [list(kv) for kv in sorted(group_templates(masked).items())]
