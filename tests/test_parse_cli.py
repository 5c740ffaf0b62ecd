"""`logtallyd parse` (logtallyd.offline.parse.run_parse): one JSON object per input line."""
from __future__ import annotations

import io
import json

import pytest

from logtallyd.offline.parse import iso_utc, run_parse


def run(text: str, *argv: str, template_of=None, group=None) -> tuple[int, list[dict]]:
    out = io.StringIO()
    rc = run_parse(list(argv), io.StringIO(text), out, template_of=template_of, group=group)
    return rc, [json.loads(line) for line in out.getvalue().splitlines()]


def test_records_and_rejections() -> None:
    rc, rows = run('<165>1 2003-10-11T22:14:15.003Z h app 12 ID1 [a b="c"] hello\n{oops\n\n'
                   '::1 - - [26/Dec/2016:16:16:29 +0200] "GET /x HTTP/1.1" 404 209\n')
    assert rc == 0
    assert rows[0] == {"format": "rfc5424", "ts": "2003-10-11T22:14:15.003Z", "host": "h", "service": "app",
                       "level": "NOTICE", "severity": 5, "facility": 20, "procid": "12", "msgid": "ID1",
                       "structured_data": {"a": {"b": "c"}}, "message": "hello"}
    assert rows[1] == {"rejected": "invalid_json", "line": "{oops"}
    assert rows[2] == {"rejected": "empty", "line": ""}
    assert rows[3]["ts"] == "2016-12-26T14:16:29Z"
    assert rows[3]["http"] == {"ip": "::1", "method": "GET", "path": "/x", "protocol": "HTTP/1.1", "status": 404,
                               "bytes": 209, "referer": None, "user_agent": None, "latency_ms": None}
    assert len(rows) == 4


def test_forced_format() -> None:
    rc, rows = run("hello\n2025-01-30 12:00:00 INFO x\n", "--format", "app")
    assert rows == [{"rejected": "invalid_app", "line": "hello"}, rows[1]]
    assert rows[1]["format"] == "app" and rows[1]["ts"] == "2025-01-30T12:00:00Z"


def test_bad_format_argument() -> None:
    rc, rows = run("x\n", "--format", "xml")
    assert rc == 2 and rows == []


def test_template_hook() -> None:
    _, rows = run("disk 42 full\n", template_of=lambda r: r.message.replace("42", "<*>"))
    assert rows[0]["template"] == "disk <*> full"


def test_iso_utc() -> None:
    assert iso_utc(0.0) == "1970-01-01T00:00:00Z"
    assert iso_utc(1.5) == "1970-01-01T00:00:01.500Z"
    assert iso_utc(1.000001) == "1970-01-01T00:00:01.000001Z"
    assert iso_utc(None) is None


def test_templates_are_grouped_over_a_block() -> None:
    from logtallyd.stats.grouping import THRESHOLD, group_templates
    from logtallyd.stats.templates import record_template

    names = ["admin", "oracle", "test", "guest", "pi", "ubuntu"][:THRESHOLD]
    text = "".join(f"Invalid user {u} from 10.0.0.{i}\n" for i, u in enumerate(names)) + "{oops\n"
    rc, rows = run(text, template_of=record_template, group=group_templates)
    assert rc == 0 and [r.get("template") for r in rows] == ["Invalid user <*> from <*>"] * THRESHOLD + [None]
    assert rows[-1] == {"rejected": "invalid_json", "line": "{oops"}
    # Blocks of one line: nothing to group with, each keeps its masked template.
    _, rows = run(text, "--group-lines", "1", template_of=record_template, group=group_templates)
    assert [r.get("template") for r in rows[:2]] == ["Invalid user admin from <*>", "Invalid user oracle from <*>"]
    # Blocks of two lines: each block holds too few names to make the position a variable.
    _, rows = run(text, "--group-lines", "2", template_of=record_template, group=group_templates)
    assert len({r.get("template") for r in rows[:THRESHOLD]}) == THRESHOLD


@pytest.mark.parametrize(("n", "ok"), [(0, False), (1, True), (1_000_000, True), (1_000_001, False), ("x", False)])
def test_group_lines_sits_exactly_at_its_range(n: object, ok: bool, capsys: pytest.CaptureFixture[str]) -> None:
    rc, rows = run("a 1\nb 2\n", "--group-lines", str(n))
    assert (rc, len(rows)) == ((0, 2) if ok else (2, 0))
    if not ok:
        assert "--group-lines" in capsys.readouterr().err


def test_error_templates_are_grouped_among_themselves() -> None:
    """As `TOP error` groups them: two error names and two info names are four names, but two
    of each kind, too few to group."""
    from logtallyd.stats.grouping import THRESHOLD, group_templates
    from logtallyd.stats.templates import record_template

    assert THRESHOLD == 4
    lines = [f"2025-01-30 12:00:0{i} {level} Invalid user {u} from 10.0.0.{i}"
             for i, (level, u) in enumerate([("ERROR", "admin"), ("ERROR", "oracle"), ("INFO", "test"), ("INFO", "pi")])]
    _, rows = run("\n".join(lines) + "\n", template_of=record_template, group=group_templates)
    assert [r["template"] for r in rows] == [f"Invalid user {u} from <*>" for u in ("admin", "oracle", "test", "pi")]
    lines += [f"2025-01-30 12:00:09 ERROR Invalid user {u} from 10.0.0.9" for u in ("guest", "ftp")]
    _, rows = run("\n".join(lines) + "\n", template_of=record_template, group=group_templates)
    assert [r["template"] for r in rows] == ["Invalid user <*> from <*>"] * 2 + [
        "Invalid user test from <*>", "Invalid user pi from <*>"] + ["Invalid user <*> from <*>"] * 2
