"""Rejection reasons are one `Literal` type: every reason the tree can produce is a member, every
member is produced somewhere, and STATS `rejected` only ever has members as keys."""
from __future__ import annotations

import ast
import json
import socket
from pathlib import Path
from typing import get_args

import pytest

from logtallyd.ingest.framing import Framer
from logtallyd.parsing import ParseOptions, parse_line
from logtallyd.records import FORMATS, REJECT_REASONS, FrameErrorReason, ParseRejectReason, Rejected

ROOT = Path(__file__).resolve().parents[1]
REF = 1764000000.0

# One line per parser reason: (force, line) -> reason.
PARSE_CASES: list[tuple[str | None, str, str]] = [
    (None, "", "empty"),
    (None, "  \ufeff ", "empty"),
    (None, "<999>1 - - - - - -", "bad_pri"),
    (None, "<01>x", "bad_pri"),
    (None, "{broken", "invalid_json"),
    ("json", "hello", "invalid_json"),
    ("rfc5424", "<14>Jan  1 00:00:00 h t: x", "invalid_rfc5424"),
    ("rfc3164", "hello", "invalid_rfc3164"),
    ("access", "hello", "invalid_access"),
    ("app", "hello", "invalid_app"),
]


@pytest.mark.parametrize(("force", "line", "reason"), PARSE_CASES)
def test_parser_reasons(force: str | None, line: str, reason: str) -> None:
    assert parse_line(line, REF, ParseOptions(force=force)) == Rejected(reason)  # type: ignore[arg-type]


def test_every_parser_reason_is_produced() -> None:
    assert {reason for _, _, reason in PARSE_CASES} == set(get_args(ParseRejectReason))


def test_forcing_raw_never_rejects() -> None:
    for line in ("{broken", "<999>1", "hello"):
        assert parse_line(line, REF, ParseOptions(force="raw")).format == "raw"  # type: ignore[union-attr]


def test_framer_reasons() -> None:
    framer = Framer(10, sample_bytes=4)
    _, errors = framer.feed(b"x" * 20 + b"\n")
    _, more = framer.feed(b"5 <1>")  # octet-counted, then the stream ends inside it
    _, last = framer.close()
    assert [(e.reason, e.size, e.sample) for e in errors + more + last] == [
        ("oversize", 20, b"xxxx"), ("truncated", 3, b"<1>")
    ]
    assert set(get_args(FrameErrorReason)) == {"oversize", "truncated"}


def _literal_reasons() -> set[str]:
    """First string arguments of `Rejected(...)`, `FrameError(...)` and `.reject(...)` in server/."""
    found: set[str] = set()
    for path in (ROOT / "server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name not in ("Rejected", "FrameError", "reject"):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif isinstance(arg, ast.JoinedStr):  # f"invalid_{f}" for the forced formats
                found |= {f"invalid_{f}" for f in FORMATS if f != "raw"}
    return found


def test_every_reason_in_the_source_is_a_member() -> None:
    found = _literal_reasons()
    assert found <= set(REJECT_REASONS)
    assert {"oversize", "truncated", "internal_error", "empty", "bad_pri", "invalid_json"} <= found


def test_stats_rejected_keys_are_members(start_server) -> None:
    server = start_server("[ingest]\nmax_message_bytes = 100\nreject_sample_bytes = 16\n")
    with socket.create_connection(server.address("tcp"), timeout=30) as sock:
        sock.sendall(b"x" * 500 + b"\n" + b"\n" + b"<999>1 - - - - - -\n" + b"{broken\n" + b"fine line\n" + b"50 <1>")
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)
    report = server.wait_received(6)
    assert report["rejected"] == {"oversize": 1, "empty": 1, "bad_pri": 1, "invalid_json": 1, "truncated": 1}
    assert set(report["rejected"]) <= set(REJECT_REASONS)
    server.stop()
    rejects = [json.loads(line) for line in (server.workdir / "rejects.log").read_text().splitlines()]
    oversize = next(r for r in rejects if r["reason"] == "oversize")
    assert oversize["line"] == "x" * 16  # `ingest.reject_sample_bytes` of the frame
