"""Template grouping: the masked templates of `templates.py` merged where a word varies like a value.

A frequency-based method in the manner of Brain (Yu et al., IEEE TSC 2023): within templates of
one token count, a template's most common token frequency marks its constant pattern, and a
position outside that pattern whose tokens are many (`threshold` distinct) is a variable. The
answer is a function of the *set* of masked templates only (no order, no counts), so grouping the
union of any workers' sets gives one answer whichever process or run saw which line.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable

WILDCARD = "<*>"
# The template `record_template` gives an HTTP request: "GET /api/users/<*> 503".
_REQUEST = re.compile(r"(?:[A-Z]+|-) (?:/\S*|-) [0-9]{3}")
THRESHOLD = 4  # distinct tokens that make a position variable (bench/templates.py --cv)


def group_templates(templates: Iterable[str], threshold: int = THRESHOLD) -> dict[str, str]:
    """masked template -> grouped template, for every template in the set."""
    by_length: dict[int, list[tuple[str, list[str]]]] = defaultdict(list)
    out: dict[str, str] = {}
    for t in set(templates):
        if _REQUEST.fullmatch(t):  # already structured: method, path and status each mean something
            out[t] = t
            continue
        tokens = t.split(" ")
        by_length[len(tokens)].append((t, tokens))
    for members in by_length.values():
        out.update(_group_length(members, threshold))
    return out


def _group_length(members: list[tuple[str, list[str]]], threshold: int) -> dict[str, str]:
    # How many distinct templates of this length hold each (position, token).
    freq: dict[tuple[int, str], int] = defaultdict(int)
    for _, tokens in members:
        for p, tok in enumerate(tokens):
            freq[p, tok] += 1
    # The root of each template: the frequency shared by the most of its tokens (ties: the
    # higher frequency). Templates with the same root tokens form a group (Brain's longest
    # common pattern); every other position is a column of the group, a variable if it holds
    # `threshold` distinct tokens, else constant (the group splits by its values).
    groups: dict[tuple, list[list[str]]] = defaultdict(list)
    keys: dict[str, tuple] = {}
    for t, tokens in members:
        counts: dict[int, int] = defaultdict(int)
        for p, tok in enumerate(tokens):
            if tok != WILDCARD:
                counts[freq[p, tok]] += 1
        root = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0] if counts else 0
        key = tuple((p, tok) for p, tok in enumerate(tokens) if tok != WILDCARD and freq[p, tok] == root)
        keys[t] = key
        groups[key].append(tokens)
    variable: dict[tuple, frozenset[int]] = {}
    for key, group in groups.items():
        fixed = {p for p, _ in key}
        distinct: dict[int, set[str]] = defaultdict(set)
        for tokens in group:
            for p, tok in enumerate(tokens):
                if p not in fixed:
                    distinct[p].add(tok)
        variable[key] = frozenset(p for p, values in distinct.items() if len(values) >= threshold or WILDCARD in values)
    out = {}
    for t, tokens in members:
        var = variable[keys[t]]
        out[t] = " ".join(WILDCARD if p in var else tok for p, tok in enumerate(tokens))
    return out


def group_rows(rows: Iterable[tuple[str, int, int, int]],
               threshold: int = THRESHOLD) -> list[tuple[str, int, int, int, list[str]]]:
    """Top-K rows (masked template, estimate, lower, upper bound) summed per grouped template,
    most frequent first (ties by template), each with its masked templates."""
    rows = list(rows)
    groups = group_templates((r[0] for r in rows), threshold)
    out: dict[str, list] = {}
    for value, est, lower, upper in rows:
        g = groups[value]
        row = out.get(g)
        if row is None:
            out[g] = [g, est, lower, upper, [value]]
        else:
            row[1] += est
            row[2] += lower
            row[3] += upper
            row[4].append(value)
    return sorted((tuple(r) for r in out.values()), key=lambda r: (-r[1], r[0]))  # type: ignore[misc]
