"""Template grouping: the masked templates of `templates.py` merged where a word varies like a value.

A frequency-based method in the manner of Brain (Yu et al., IEEE TSC 2023): within templates of
one token count, a template's most common token frequency marks its constant pattern, and a
position outside that pattern whose tokens are many (`threshold` distinct) is a variable. The
answer is a function of the *set* of masked templates only (no order, no counts), so grouping the
union of any workers' sets gives one answer whichever process or run saw which line.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

WILDCARD = "<*>"
THRESHOLD = 4  # distinct tokens that make a position variable (bench/templates.py --cv)


def group_templates(templates: Iterable[str], threshold: int = THRESHOLD) -> dict[str, str]:
    """masked template -> grouped template, for every template in the set."""
    by_length: dict[int, list[tuple[str, list[str]]]] = defaultdict(list)
    for t in set(templates):
        tokens = t.split(" ")
        by_length[len(tokens)].append((t, tokens))
    out: dict[str, str] = {}
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
    # higher frequency). Tokens at least that frequent are its constant pattern (Brain's root
    # and parent nodes); rarer tokens are candidates for variables (child nodes).
    groups: dict[tuple, list[list[str]]] = defaultdict(list)
    keys: dict[str, tuple] = {}
    for t, tokens in members:
        counts: dict[int, int] = defaultdict(int)
        for p, tok in enumerate(tokens):
            if tok != WILDCARD:
                counts[freq[p, tok]] += 1
        root = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0] if counts else 0
        key = tuple((p, tok) for p, tok in enumerate(tokens) if tok != WILDCARD and freq[p, tok] >= root)
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
