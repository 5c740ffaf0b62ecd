"""The mypyc-compiled twins (logtallyd.native) run the same code as the pure-Python modules.

Each twin gives the same records (every format, through `parse_line`), counts (the line counter)
and tallies (web report) as its module, on the parser tests' strings, bent and hypothesis-edited
lines, the shared corpus and generated batches. Under CI, which installs the package the README's way, the twins must have been built
and be in use; elsewhere the comparisons skip when they are not. A twin built from an older
source, or LOGTALLY_NATIVE=0, leaves the pure module in use.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from logtallyd import native
from logtallyd.parsing import access, sniff
from logtallyd.records import Http
from logtallyd.stats import webreport, webtally

from test_parse_access_same import CORPUS, corpus_lines, generated, parser_test_strings
from test_webtally_same import CONFIGS, batch

ACCESS = native.twin("logtallyd.parsing.access")
TALLY = native.twin("logtallyd.stats.webtally")
needs_twins = pytest.mark.skipif((ACCESS is None or TALLY is None) and os.environ.get("CI") != "true",
                                 reason="the compiled twins are not built (pip install -e . builds them)")


def test_twins_are_built_and_used_under_ci() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("only CI is sure to have installed the package with its build step")
    assert native.status() == {name: True for name in native.MODULES}
    assert sniff.parse_access is ACCESS.parse_access  # type: ignore[union-attr]
    assert webreport.tally is TALLY.tally  # type: ignore[union-attr]


def test_a_stale_twin_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_source_of", lambda name: b"# edited since the build\n")
    for name in native.MODULES:
        assert native.twin(name) is None
        assert native.load(name).__name__ == name
    assert native.status() == {name: False for name in native.MODULES}


def test_the_environment_can_turn_the_twins_off() -> None:
    code = "from logtallyd import native, parsing; import logtallyd.parsing.sniff as s; " \
           "print(native.status(), s.parse_access.__module__)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, native.ENV: "0"},
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "logtallyd.parsing.access"
    assert "True" not in out


def test_only_the_listed_modules_load() -> None:
    with pytest.raises(ValueError):
        native.load("logtallyd.records")


def same_record(line: str) -> None:
    compiled, pure = ACCESS.parse_access(line), access.parse_access(line)  # type: ignore[union-attr]
    assert compiled == pure, line
    if pure is not None:
        assert [type(getattr(compiled.http, f)) for f in Http.__struct_fields__] == \
               [type(getattr(pure.http, f)) for f in Http.__struct_fields__], line


@needs_twins
def test_access_twin_reads_the_test_strings_and_bent_lines_the_same() -> None:
    lines = parser_test_strings() + generated(30_000, seed=5)
    assert sum(access.parse_access(x) is not None for x in lines) > 5_000
    for line in lines:
        same_record(line)


@needs_twins
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
def test_access_twin_reads_the_corpus_the_same() -> None:
    for line in corpus_lines():
        same_record(line)


@needs_twins
@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(generated(300, seed=13)), st.integers(0, 400), st.text(alphabet=' "[]\\-0a\t.', max_size=4))
def test_access_twin_reads_any_edit_the_same(line: str, at: int, insert: str) -> None:
    same_record(line[:at] + insert + line[at:])


def tallied(module: object, records: list, config: webreport.WebConfig) -> object:
    t = module.tally(records, tuple(e.lower() for e in config.static_extensions), config.visitors_4xx)  # type: ignore[attr-defined]
    rows = {name: [(k, s.hits, s.bytes, list(s.visitors), list(s.latencies)) for k, s in panel.items()]
            for name, panel in t.rows.items()}
    return t.requests, t.sent, t.undated, list(t.everyone), rows


@needs_twins
@pytest.mark.parametrize("seed", range(8))
def test_tally_twin_counts_the_same(seed: int) -> None:
    rng = random.Random(seed)
    records = batch(rng, 3000, unique_ips=seed % 2 == 0, undated=0.1, days=3)
    for config in CONFIGS:
        assert tallied(TALLY, records, config) == tallied(webtally, records, config)


# -- the line counter of Partial.add_many --------------------------------------------------------

from logtallyd.records import ERROR_SEVERITY, Record
from logtallyd.stats import linecount
from logtallyd.stats.aggregate import _Scratch

COUNT = native.twin("logtallyd.stats.linecount")


def old_count(s: _Scratch, recs: list) -> None:
    """`Partial._add_second`'s counting as it was: a C-level pass per field (frozen)."""
    import collections
    import operator

    def count(counts: dict, values) -> None:
        collections._count_elements(counts, values)  # type: ignore[attr-defined]
        counts.pop(None, None)

    count(s.by_format, map(operator.attrgetter("format"), recs))
    count(s.by_level, map(operator.attrgetter("level"), recs))
    severities = collections.Counter(map(operator.attrgetter("severity"), recs))
    s.errors += sum(n for sev, n in severities.items() if sev is not None and sev <= ERROR_SEVERITY)
    ts = [t for t in map(operator.attrgetter("ts"), recs) if t is not None]
    s.ts += ts
    count(s.services, map(operator.attrgetter("service"), recs))
    count(s.hosts, map(operator.attrgetter("host"), recs))
    https = list(filter(None, map(operator.attrgetter("http"), recs)))
    if not https:
        return
    s.requests += len(https)
    count(s.by_method, map(operator.attrgetter("method"), https))
    statuses = list(map(operator.attrgetter("status"), https))
    count(s.by_status, statuses)
    ips = list(map(operator.attrgetter("ip"), https))
    count(s.bad_ips, [ip for ip, st in zip(ips, statuses) if st is not None and st >= 400])
    s.bytes_sent += sum(filter(None, map(operator.attrgetter("bytes"), https)))
    s.latencies += [v for v in map(operator.attrgetter("latency_ms"), https) if v is not None]
    count(s.ips, ips)
    agents = list(map(operator.attrgetter("user_agent"), https))
    count(s.user_agents, agents)
    pairs = [pair for pair, st in zip(zip(ips, agents), statuses) if st is None or not 400 <= st < 500]
    s.visitors.update(pairs)
    count(s.paths, map(operator.attrgetter("path"), https))


def scratch_state(s: _Scratch) -> list:
    # dicts as item lists: equal only in the same order (the order sketches are fed in)
    return [list(v.items()) if isinstance(v, dict) else sorted(v, key=repr) if isinstance(v, set) else v
            for v in (getattr(s, name) for name in _Scratch.__slots__)]


def mixed_records(rng: random.Random, n: int) -> list:
    out = batch(rng, n, undated=0.1)
    for i in range(n // 3):  # lines of other formats, with levels, services and hosts
        sev = rng.choice([None, 0, 2, 3, 4, 6, 7])
        out.insert(rng.randrange(len(out) + 1), Record(
            rng.choice(["rfc5424", "rfc3164", "json", "app"]), f"m{i}", rng.choice([None, 1.5e9 + i, 1_700_000_000]),
            host=rng.choice([None, "web1", "db"]), service=rng.choice([None, "nginx", "cron"]),
            level=None if sev is None else ["EMERG", "ALERT", "CRIT", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"][sev],
            severity=sev))
    return out


def test_line_counter_agrees_with_the_records_module() -> None:
    assert linecount.ERROR_SEVERITY == ERROR_SEVERITY


@pytest.mark.parametrize("seed", range(10))
def test_line_counter_counts_as_the_old_passes(seed: int) -> None:
    rng = random.Random(seed)
    recs = mixed_records(rng, rng.choice([0, 1, 50, 2000]))
    expected = _Scratch()
    old_count(expected, recs)
    old_count(expected, recs[: len(recs) // 2])  # counted into a scratch that already holds some
    for module in [linecount] + ([COUNT] if COUNT is not None else []):
        got = _Scratch()
        module.count_records(got, recs)
        module.count_records(got, recs[: len(recs) // 2])
        assert scratch_state(got) == scratch_state(expected), module.__name__


@pytest.mark.parametrize("seed", range(4))
def test_error_templates_are_those_of_the_errors(seed: int) -> None:
    from logtallyd.stats.templates import record_template

    recs = mixed_records(random.Random(seed), 500)
    expected = [record_template(r) if r.severity is not None and r.severity <= ERROR_SEVERITY else None for r in recs]
    assert any(expected) and None in expected
    for module in [linecount] + ([COUNT] if COUNT is not None else []):
        assert module.error_templates(recs, record_template) == expected, module.__name__


@pytest.mark.parametrize("seed", range(6))
def test_behind_lines_are_those_older_than_the_window_before_them(seed: int) -> None:
    """A brute-force reading of `behind_lines`: later than the future guard sets no newest line."""
    rng = random.Random(seed)
    seconds, t = [], 1_700_000_000
    for _ in range(rng.choice([0, 1, 40, 300])):
        t += rng.choice([1, 0, -3, 50, -1200, 2000, -5000])
        seconds.append(t)
    horizon, future = rng.choice([60, 900]), 1_700_000_000 + rng.choice([0, 3000, 10**6])
    expected = [i for i, x in enumerate(seconds)
                if any(y - x >= horizon for y in seconds[:i] if y <= future)]
    for module in [linecount] + ([COUNT] if COUNT is not None else []):
        assert module.behind_lines(seconds, horizon, future) == expected, module.__name__


def old_by_second(seconds: list[int]) -> list:
    """`by_second` as it was: a C-level scan per distinct second, or one sort (frozen)."""
    import itertools

    first = seconds[0] if seconds else 0
    if seconds.count(first) == len(seconds):
        return [(first, None)] if seconds else []
    distinct = list(dict.fromkeys(seconds))
    if len(distinct) <= 8:
        everywhere = range(len(seconds))
        return [(second, list(itertools.compress(everywhere, map(second.__eq__, seconds)))) for second in distinct]
    get = seconds.__getitem__
    groups = {second: list(positions)
              for second, positions in itertools.groupby(sorted(range(len(seconds)), key=get), get)}
    return [(second, groups[second]) for second in distinct]


@pytest.mark.parametrize("seed", range(8))
def test_by_second_groups_as_the_old_scans(seed: int) -> None:
    rng = random.Random(seed)
    base = 1_700_000_000
    seconds = [base + rng.randrange(rng.choice([1, 3, 8, 9, 500])) for _ in range(rng.choice([0, 1, 7, 4000]))]
    for module in [linecount] + ([COUNT] if COUNT is not None else []):
        assert module.by_second(seconds) == old_by_second(seconds), module.__name__


@pytest.mark.parametrize("seed", range(6))
def test_neighbour_seconds_file_undated_lines_beside_their_neighbours(seed: int) -> None:
    rng = random.Random(seed)
    stamps = [rng.choice([None, None, 1_700_000_000 + rng.randrange(100) + 0.5])
              for _ in range(rng.choice([0, 1, 5, 300]))]
    known = [int(t) for t in stamps if t is not None]
    expected = None if not known else [
        int(next((t for t in reversed(stamps[:i + 1]) if t is not None), stamps[[t is not None for t in stamps].index(True)]))
        for i in range(len(stamps))]
    for module in [linecount] + ([COUNT] if COUNT is not None else []):
        assert module.neighbour_seconds(stamps) == expected, module.__name__


# -- every format, through parse_line, compiled against pure ------------------------------------

_DUMP = """
import sys, msgspec
from logtallyd import native
from logtallyd.parsing import ParseOptions, parse_line
lines = msgspec.json.decode(open(sys.argv[1], "rb").read())
options = [None, ParseOptions(nested=False, infer_level_from_keywords=False), ParseOptions(force="app"),
           ParseOptions(force="rfc5424"), ParseOptions(formats=["access", "app"])]
out = [[parse_line(line, ref, opts) for opts in options] for line, ref in lines]
sys.stdout.buffer.write(msgspec.json.encode(out))
sys.stderr.write(msgspec.json.encode(native.status()).decode())
"""


def _read_all(lines: list[tuple[str, float]], tmp_path, compiled: bool) -> tuple[dict, bytes]:
    import json

    src = tmp_path / "lines.json"
    src.write_text(json.dumps(lines))
    env = {**os.environ, native.ENV: "1" if compiled else "0"}
    done = subprocess.run([sys.executable, "-c", _DUMP, str(src)], env=env, capture_output=True, check=True)
    return json.loads(done.stderr), done.stdout


@needs_twins
def test_every_format_reads_the_same_compiled_and_pure(tmp_path) -> None:
    """The records of every line of the parser tests, bent access lines and the corpus, in five
    option sets, as JSON (so an int timestamp and a float one differ): compiled and pure alike."""
    texts = parser_test_strings() + generated(3_000, seed=9) + (corpus_lines() if CORPUS.is_dir() else [])
    lines = [(t, [1_733_000_000.25, 1_733_000_000, 0.0][i % 3]) for i, t in enumerate(texts)]
    status, compiled = _read_all(lines, tmp_path, True)
    assert all(status.values()), status
    status, pure = _read_all(lines, tmp_path, False)
    assert not any(status.values()), status
    assert len(compiled) > 100_000 and compiled == pure
