"""RFC 6587 framer: plain bytes in, frames out, split anywhere."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.ingest.framing import Framer

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def frame_all(data: bytes, max_size: int = 65536, chunks: list[int] | None = None) -> tuple[list[bytes], list[str]]:
    framer = Framer(max_size)
    frames: list[bytes] = []
    errors: list[str] = []
    pieces = [data] if chunks is None else _split(data, chunks)
    for piece in pieces:
        f, e = framer.feed(piece)
        frames += f
        errors += [x.reason for x in e]
    f, e = framer.close()
    return frames + f, errors + [x.reason for x in e]


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


def octet(msg: bytes) -> bytes:
    return str(len(msg)).encode() + b" " + msg


def test_lf_crlf_nul_terminated() -> None:
    frames, errors = frame_all(b"<1>a\n<2>b\r\n<3>c\x00<4>d\n")
    assert frames == [b"<1>a", b"<2>b", b"<3>c", b"<4>d"]
    assert errors == []


def test_octet_counted_frames_back_to_back() -> None:
    msgs = [b"<1>1 - - - - - -", b"<2>1 - host - - - hello\nworld", b"<3>x"]
    frames, errors = frame_all(b"".join(octet(m) for m in msgs))
    assert frames == msgs  # an octet-counted MSG may hold an LF
    assert errors == []


def test_mixed_framing_on_one_connection() -> None:
    data = octet(b"<1>one") + b"<2>two\n" + octet(b"<3>three") + b"\n" + b"four\n"
    frames, _ = frame_all(data)
    # The LF straight after an octet-counted frame is its trailer (rsyslog, logger), not an empty line.
    assert frames == [b"<1>one", b"<2>two", b"<3>three", b"four"]


def test_ip_led_and_digit_led_lines_are_lf_framed() -> None:
    lines = [
        b'10.1.3.6 - - [30/Jan/2025:12:00:00 +0000] "GET / HTTP/1.1" 200 12',
        b"200 OK this is not a length",
        b"2025-01-30 12:00:00 ERROR boom",
        b"12345",
    ]
    frames, errors = frame_all(b"\n".join(lines) + b"\n")
    assert frames == lines
    assert errors == []


def test_empty_lines_are_frames() -> None:
    frames, _ = frame_all(b"a\n\n\nb\n")
    assert frames == [b"a", b"", b"", b"b"]  # the parser rejects them as `empty`, counted


def test_last_line_without_terminator_is_delivered_at_close() -> None:
    assert frame_all(b"a\nb") == ([b"a", b"b"], [])


def test_truncated_octet_frame_is_an_error() -> None:
    assert frame_all(b"16 <1>1") == ([], ["truncated"])


def test_oversize_lf_line_resyncs_at_next_line() -> None:
    data = b"x" * 100 + b"\nok\n" + b"y" * 11 + b"\nlast\n"
    frames, errors = frame_all(data, max_size=10)
    assert frames == [b"ok", b"last"]
    assert errors == ["oversize", "oversize"]


def test_exactly_max_size_is_accepted() -> None:
    frames, errors = frame_all(b"x" * 10 + b"\n" + octet(b"<" + b"y" * 9), max_size=10)
    assert frames == [b"x" * 10, b"<" + b"y" * 9]
    assert errors == []


def test_oversize_octet_frame_is_skipped_by_count() -> None:
    big = b"<1>" + b"z" * 50
    frames, errors = frame_all(octet(big) + octet(b"<2>ok"), max_size=20)
    assert frames == [b"<2>ok"]
    assert errors == ["oversize"]


def test_oversize_line_arriving_in_small_pieces_uses_bounded_memory() -> None:
    framer = Framer(100)
    for _ in range(1000):
        framer.feed(b"a" * 50)
        assert framer.buffered <= 200
    frames, errors = framer.feed(b"\nafter\n")
    assert frames == [b"after"]


_message = st.binary(min_size=1, max_size=40).map(lambda b: b"<" + b.replace(b"\n", b"").replace(b"\0", b""))
_lf_line = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\0", b"").replace(b"\r", b""))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(_message.map(lambda m: ("octet", m)), _lf_line.map(lambda m: ("lf", m))), max_size=12),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_splitting_the_input_anywhere_gives_the_same_frames(items: list[tuple[str, bytes]], cuts: list[int]) -> None:
    data = b""
    expected = []
    previous = ""
    for kind, msg in items:
        if kind == "octet":
            data += octet(msg)
            expected.append(msg)
        else:
            if msg[:1].isdigit() or (previous == "octet" and not msg):
                # A digit-led line could legally open an octet header, and an empty line right
                # after an octet-counted frame is that frame's trailer.
                msg = b"x" + msg
            data += msg + b"\n"
            expected.append(msg)
        previous = kind
    whole = frame_all(data)
    assert frame_all(data, chunks=cuts) == whole
    assert whole[0] == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_no_input_raises_and_memory_is_bounded(data: bytes, cuts: list[int]) -> None:
    framer = Framer(64)
    for piece in _split(data, cuts):
        framer.feed(piece)
        assert framer.buffered <= 64 + 12 + len(piece)
    framer.close()


def _go_syslog_framing_cases() -> list[dict]:
    path = CORPUS / "go-syslog" / "cases.jsonl"
    if not path.exists():
        return []
    cases = [json.loads(line) for line in path.read_text().splitlines()]
    return [c for c in cases if c["set"].startswith("rfc6587")]


@pytest.mark.skipif(not _go_syslog_framing_cases(), reason="../shared/corpus is absent")
def test_go_syslog_rfc6587_vectors() -> None:
    """Frame count agrees with go-syslog's best-effort result list (errors included)."""
    cases = _go_syslog_framing_cases()
    agree, disagree = 0, []
    for case in cases:
        data = case["input"].encode()
        max_size = case.get("max_message_length", 8192)
        frames, errors = frame_all(data, max_size=max_size)
        expected = case["results_best_effort"]
        if case["input"] == "":
            ok = frames == [] and errors == []  # an empty stream carries no message: nothing to count
        else:
            ok = len(frames) + len(errors) == len(expected)
        if ok:
            agree += 1
        else:
            disagree.append((case["id"], case.get("descr"), len(frames) + len(errors), len(expected)))
    print(f"go-syslog RFC 6587 vectors: {agree}/{len(cases)} agree; disagree: {disagree}")
    assert agree / len(cases) >= 0.99, disagree


def test_fast_path_keeps_lines_with_space_angle_and_finds_octet_frames() -> None:
    lines = [b"a <b> c", b"x 12 <y", b"2025-01-30 12:00:00 INFO <tag> msg"]
    framer = Framer(65536)
    frames, errors = framer.feed(b"\n".join(lines) + b"\n")
    assert frames == lines and errors == []
    # an octet-counted frame at the start of the buffer and one right after a LF line
    frames, errors = framer.feed(octet(b"<1>one") + b"\nplain\n" + octet(b"<2>two\nmore") + b"\n")
    assert frames == [b"<1>one", b"plain", b"<2>two\nmore"] and errors == []
    # no LF at all in a chunk: nothing yet; the rest of the line completes it
    assert framer.feed(b"partial line") == ([], [])
    assert framer.feed(b" done\nnext") == ([b"partial line done"], [])
    assert framer.close() == ([b"next"], [])
