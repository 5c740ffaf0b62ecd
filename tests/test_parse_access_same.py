"""The string-method reading of access lines gives exactly the records of the single regular
expression it replaced (frozen below), on the parser tests' own strings, the shared corpus and
generated lines that bend every field: vhosts, IPv6, `-` fields, quotes, backslashes, brackets,
odd spacing and truncation."""
from __future__ import annotations

import ast
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from logtallyd.parsing import parse_line
from logtallyd.parsing.access import _MAX_DIGITS, _latency, _parse_ssl, _request, parse_access
from logtallyd.parsing.timestamps import clf_epoch
from logtallyd.records import LEVELS, Http, Record

TESTS = Path(__file__).resolve().parent
CORPUS = TESTS.parents[1] / "shared" / "corpus"

# -- the reference: parse_access as it was, one regular expression for the whole line --------
_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
_OLD_LINE = re.compile(
    rf'(?:([^ \[]+) )?([^ \[]+) [^ ]+ [^ ]+ \[([^\]]{{26}})\] {_QUOTED} ([0-9]{{3}}|-) ([0-9]+|-)'
    rf'(?: {_QUOTED} {_QUOTED})?((?: .*)?)\Z',
    re.DOTALL,
)


def old_parse_access(line: str) -> Record | None:
    if line.startswith("["):
        return _parse_ssl(line)
    m = _OLD_LINE.match(line) if " [" in line else None
    if m is None:
        return None
    vhost, client, time_text, request, status_text, bytes_text, referer, user_agent, tail = m.groups()
    ts = clf_epoch(time_text)
    if ts is None:
        return None
    method, path, protocol = _request(request)
    if status_text == "-":
        status = severity = None
    else:
        status = int(status_text)
        severity = 3 if status >= 500 else 4 if status >= 400 else 6
    return Record(
        format="access", message=line, ts=ts, host=vhost,
        level=LEVELS[severity] if severity is not None else None, severity=severity,
        http=Http(
            ip=client, method=method, path=path, protocol=protocol, status=status,
            bytes=None if bytes_text == "-" or len(bytes_text) > _MAX_DIGITS else int(bytes_text),
            referer=None if referer == "-" else referer,
            user_agent=None if user_agent == "-" else user_agent,
            latency_ms=_latency(tail) if tail else None,
        ),
    )


def same(line: str) -> None:
    new, old = parse_access(line), old_parse_access(line)
    assert new == old, line
    if new is not None:  # equal, and of the same types field by field (int is not float)
        assert [type(getattr(new.http, f)) for f in Http.__struct_fields__] == \
               [type(getattr(old.http, f)) for f in Http.__struct_fields__], line


# -- inputs ------------------------------------------------------------------------------------
def parser_test_strings() -> list[str]:
    """Every string constant of the parser tests (the lines they check, and more)."""
    out = []
    for path in sorted(TESTS.glob("test_parse_*.py")) + sorted(TESTS.glob("test_sniff*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append(node.value)
    return out


STAMPS = ["10/Oct/2000:13:55:36 -0700", "01/Mar/2025:00:00:00 +0000", "29/Feb/2024:23:59:59 +0530",
          "31/Apr/2025:00:00:00 +0000", "10/Oct/2000:13:55:36 +9999", "10/Foo/2000:13:55:36 +0000",
          "10/Oct/2000:13:55:36+0000x", "1/Oct/2000:13:55:36 +0000", "10/Oct/2000:13:55:36 +0000 ]"]
CLIENTS = ["10.0.0.1", "::1", "2001:db8::ff00:42:8329", "host.example.com", "a[b", "-", "x]y", "é"]
REQUESTS = ["GET / HTTP/1.1", "-", "POST /a?b=c HTTP/2.0", "GET /x", "junk", "", 'GET /q\\"x HTTP/1.1',
            "GET /a\\\\ HTTP/1.0", "\\x16\\x03\\x01", "G3T / HTTP/1.1", "GET /a b HTTP/1.1", "GET / FTP/1"]
QUOTED = ["-", "https://example.com/", "", "Mozilla/5.0 (X11; Linux x86_64)", 'a\\"b', "c\\\\", "x y z"]
TAILS = ["", " 0.005", " 5123", " -", ' "1.2.3.4" 0.010', " PID 1 Time Taken 0", " ", "  ", "x", " 1e5",
         " 123456789012345", ' "a', " 0.1 0.2"]


def generated(n: int, seed: int) -> list[str]:
    r = random.Random(seed)

    def pick(options: list[str]) -> str:  # the first, well-formed option half of the time
        return options[0] if r.random() < 0.5 else r.choice(options)

    out = []
    for _ in range(n):
        head = f"{r.choice(CLIENTS)} {pick(['-', 'ident', '[x'])} {pick(['-', 'frank', 'u]', '[u'])}"
        if r.random() < 0.2:
            head = f"{r.choice(['vh.example.com', 'vh:80', '[v'])} {head}"
        status = pick(["200", "404", "503", "-", "99", "1000", "２００", "301"])
        size = pick(["2326", "0", "-", "", "123456789012", "1234567890123", "12a", "²"])
        body = f'{head} [{pick(STAMPS)}] "{pick(REQUESTS)}" {status} {size}'
        if r.random() < 0.7:
            body += f' "{r.choice(QUOTED)}" "{r.choice(QUOTED)}"'
        body += pick(TAILS)
        roll = r.random()
        if roll < 0.1:  # truncated anywhere
            body = body[:r.randrange(len(body) + 1)]
        elif roll < 0.2:  # one character replaced by one that matters to the grammar
            k = r.randrange(len(body))
            body = body[:k] + r.choice(' "[]\\-\t\n') + body[k + 1:]
        elif roll < 0.25:  # a doubled space
            k = body.find(" ", r.randrange(len(body)))
            body = body if k < 0 else body[:k] + " " + body[k:]
        out.append(body)
    return out


def corpus_lines() -> list[str]:
    out = []
    for path in sorted(CORPUS.rglob("*")):
        if path.suffix == ".jsonl":
            for row in path.read_text(encoding="utf-8").splitlines():
                out += [v for v in json.loads(row).values() if isinstance(v, str)]
        elif path.suffix == ".log":
            out += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return out


def test_parser_test_strings_read_the_same() -> None:
    strings = parser_test_strings()
    assert sum(" [" in s for s in strings) > 20  # the access tests' lines are among them
    for s in strings:
        same(s)
        same(s.strip())


def test_generated_lines_read_the_same() -> None:
    lines = generated(30_000, seed=7)
    accepted = sum(old_parse_access(line) is not None for line in lines)
    assert 0.2 * len(lines) < accepted < 0.9 * len(lines)  # both verdicts are well exercised
    for line in lines:
        same(line)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
def test_corpus_lines_read_the_same() -> None:
    lines = corpus_lines()
    assert sum(old_parse_access(line) is not None for line in lines) >= 20  # Filebeat's Apache lines
    for line in lines:
        same(line)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(generated(300, seed=11)), st.integers(0, 400), st.text(alphabet=' "[]\\-0a\t', max_size=4))
def test_any_edit_reads_the_same(line: str, at: int, insert: str) -> None:
    same(line[:at] + insert + line[at:])


def test_parse_line_agrees_on_access_lines() -> None:
    """Through the sniffer too (IPv4, host name and IPv6 first characters take different routes)."""
    for line in generated(3000, seed=3):
        got = parse_line(line, 1764000000.0)
        if isinstance(got, Record) and got.format == "access":
            assert got == old_parse_access(line.strip(" \t\ufeff\x00").rstrip()), line


def test_records_are_not_tracked_by_the_cyclic_collector() -> None:
    """`gc=False` on Record, Http and Rejected: what every format's parser makes stays untracked."""
    import gc

    lines = ['<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 [ex@1 a="b"] hi', "<13>Jan  5 10:00:00 h app: x",
             '{"message": "m", "level": "warn", "http": {"status": 500}}', "2025-01-30 12:00:00,123 ERROR [a] b",
             '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326 "-" "ua"', "free text", "{bad", ""]
    results = [parse_line(line, 1764000000.0) for line in lines]
    assert {type(r).__name__ for r in results} == {"Record", "Rejected"}
    assert not any(gc.is_tracked(r) or gc.is_tracked(getattr(r, "http", None)) for r in results)
