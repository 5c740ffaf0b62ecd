"""RFC 6587 framer: plain bytes in, frames out, split anywhere."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.ingest.framing import Delimiter, Framer

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def frame_all(data: bytes, max_size: int = 65536, chunks: list[int] | None = None,
              delimiter: Delimiter = "learn") -> tuple[list[bytes], list[str]]:
    framer = Framer(max_size, delimiter=delimiter)
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
    frames, errors = frame_all(b"<1>a\n<2>b\r\n<3>c\x00<4>d\n", delimiter="any")
    assert frames == [b"<1>a", b"<2>b", b"<3>c", b"<4>d"]
    assert errors == []


# SysLogHandler over TCP: `<PRI>msg` + NUL, where msg (a traceback) holds LFs.
_TRACEBACK = b"<11>app: boom\nTraceback (most recent call last):\n  File \"x.py\", line 1\nValueError: x"


@pytest.mark.parametrize("delimiter", ["learn", "nul"])
def test_nul_stream_keeps_lfs_inside_its_messages(delimiter: Delimiter) -> None:
    data = _TRACEBACK + b"\x00<14>app: next\x00" + _TRACEBACK + b"\n\x00"
    assert frame_all(data, delimiter=delimiter) == ([_TRACEBACK, b"<14>app: next", _TRACEBACK + b"\n"], [])


@pytest.mark.parametrize("cut", [5, 20, len(_TRACEBACK), len(_TRACEBACK) + 1, len(_TRACEBACK) + 8])
def test_learning_waits_for_the_trailer_of_the_first_frame(cut: int) -> None:
    # Cut anywhere not right after an LF, the first frame is held until its NUL shows the trailer.
    data = _TRACEBACK + b"\x00<14>b\nc\x00"
    assert frame_all(data, chunks=[cut]) == ([_TRACEBACK, b"<14>b\nc"], [])


def test_a_stream_that_ends_its_data_on_lf_learns_lf() -> None:
    framer = Framer(65536)
    assert framer.feed(b"<1>a\n<2>b\n") == ([b"<1>a", b"<2>b"], [])
    assert framer.delimiter == "any"
    assert framer.feed(b"<3>c\x00<4>d\ne\n") == ([b"<3>c", b"<4>d", b"e"], [])  # NUL still ends one


def test_learning_holds_no_more_than_max_size() -> None:
    framer = Framer(64)
    assert framer.feed(b"<1>a\n<2>b") == ([], [])  # could still be one NUL-ended frame
    assert framer.feed(b"x" * 60) == ([b"<1>a"], [])  # past 64 held bytes: LF it is
    assert framer.delimiter == "any"
    assert framer.close() == ([b"<2>b" + b"x" * 60], [])


def test_a_stream_closed_while_learning_delivers_its_lines() -> None:
    assert frame_all(b"<1>a\n<2>b") == ([b"<1>a", b"<2>b"], [])
    assert frame_all(b"<1>a\n16 <1>1") == ([b"<1>a"], ["truncated"])


def test_octet_frames_do_not_decide_the_delimiter() -> None:
    framer = Framer(65536)
    assert framer.feed(octet(b"<1>one\ntwo")) == ([b"<1>one\ntwo"], [])
    assert framer.delimiter == "learn"
    assert framer.feed(b"<2>x\ny\x00") == ([b"<2>x\ny"], [])
    assert framer.delimiter == "nul"


def test_any_splits_a_nul_stream_at_its_lfs() -> None:
    frames, _ = frame_all(_TRACEBACK + b"\x00", delimiter="any")
    assert len(frames) == 4


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


@pytest.mark.parametrize("delimiter", ["any", "nul", "learn"])
def test_a_crlf_trailer_split_between_reads_is_still_a_trailer(delimiter: Delimiter) -> None:
    """`3 <x1\r` then `\n`: however TCP cuts the trailer, it never becomes a frame of its own."""
    data = b"3 <x1\r\n" + octet(b"<2>two")
    whole = frame_all(data, delimiter=delimiter)
    assert whole == ([b"<x1", b"<2>two"], [])
    for cut in range(1, len(data)):
        assert frame_all(data, chunks=[cut], delimiter=delimiter) == whole


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


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_oversize_octet_frame_is_one_error_with_the_bytes_discarded(chunk: int) -> None:
    # The LF-separated lines inside the frame are part of its one message (RFC 6587 §3.4.1):
    # discarded with it, not delivered and not counted apart.
    big = b"<1>first\n<2>inside one\n<3>inside two\n" + b"z" * 30
    data = octet(big) + b"\n<4>after\n"
    framer = Framer(20)
    frames, errors = [], []
    for i in range(0, len(data), chunk):
        f, e = framer.feed(data[i : i + chunk])
        frames += f
        errors += e
    f, e = framer.close()
    assert frames + f == [b"<4>after"]
    assert [(x.reason, x.size) for x in errors + e] == [("oversize", len(big))]
    assert (errors + e)[0].sample == big[:256]


def test_oversize_frames_cut_by_the_end_of_the_stream_count_what_was_discarded() -> None:
    framer = Framer(20)
    assert framer.feed(b"100 <1>" + b"z" * 40) == ([], [])  # counted when its end has passed
    frames, errors = framer.close()
    assert [(x.reason, x.size) for x in errors] == [("oversize", 43)]
    framer = Framer(20)
    assert framer.feed(b"x" * 30) == ([], [])
    assert framer.feed(b"y" * 10) == ([], [])
    assert [(x.reason, x.size) for x in framer.feed(b"y\nok\n")[1]] == [("oversize", 41)]


def test_oversize_nul_frame_keeps_its_lfs_and_resyncs_at_nul() -> None:
    frames, errors = frame_all(b"<1>" + b"a\n" * 20 + b"\x00<2>ok\x00", max_size=20, delimiter="nul")
    assert frames == [b"<2>ok"] and errors == ["oversize"]


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


@pytest.mark.parametrize("data", [
    b"<1>a\n<2>b\x00\x00\x00\n<3>c\n",  # NUL padding, as a file cut by a crash holds
    b"<1>a\n<2>b\x00junk\n<3>c\n",
])
def test_a_nul_that_is_no_trailer_learns_any(data: bytes) -> None:
    framer = Framer(65536)
    frames, _ = framer.feed(data)
    assert framer.delimiter == "any"
    assert frames[0] == b"<1>a" and frames[-1] == b"<3>c"


def test_gelf_style_nul_framed_json_learns_nul() -> None:
    assert frame_all(b'{"a":\n1}\x00{"b":2}\x00') == ([b'{"a":\n1}', b'{"b":2}'], [])
