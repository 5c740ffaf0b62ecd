"""Worker side of ingestion (logtallyd.pool.worker): one batch in, one mergeable result out."""
from __future__ import annotations

import subprocess
import sys

import pytest

from logtallyd.stats.aggregate import Partial
from logtallyd.detect.config import DetectConfig
from logtallyd.detect.feed import Feed
from logtallyd.parsing import parse_line
from logtallyd.records import Rejected, is_error
from logtallyd.stats.templates import record_template
from logtallyd.pool.worker import WorkerOptions, decode_result, process_batch

ARRIVAL = 1738238400.0
FRAMES = [
    b"<134>1 2025-01-30T12:00:00.5Z host app 1 ID [x a=\"1\"] hello",
    b"<131>Jan 30 12:00:01 host sshd[2]: Failed password for root from 203.0.113.7 port 22 ssh2",
    b'10.0.0.1 - - [30/Jan/2025:12:00:02 +0000] "GET / HTTP/1.1" 503 12 "-" "curl/8" 0.004',
    b"octet\nframe with a LF",
    b"\xff\xfe not utf-8",
    b"",
    b"<999>bad pri",
    b'{"ts": 1738238403, "level": "error", "msg": "disk 4 full", "service": "db"}',
    b"no timestamp at all",
]


def test_batch_result_is_the_per_line_reading() -> None:
    result = decode_result(process_batch(FRAMES, ARRIVAL, WorkerOptions(), seq=7))
    assert result.rejected == [(5, "empty"), (6, "bad_pri")]
    partial = Partial.from_bytes(result.partial)
    assert (partial.received, partial.parsed, partial.bytes) == (9, 7, sum(map(len, FRAMES)))
    assert partial.notes == {"invalid_utf8": 1}  # kept with U+FFFD, counted
    # The same lines read one by one through the public parser, one `add_many()` call per line:
    expected, feed = Partial(), Feed(DetectConfig(), origin=7)
    for frame in FRAMES:
        record = parse_line(frame.decode("utf-8", "replace"), ARRIVAL)
        if isinstance(record, Rejected):
            expected.reject(record.reason, len(frame))
            continue
        second = int(record.ts) if record.ts is not None else int(ARRIVAL)
        template = record_template(record) if is_error(record) else None
        expected.add_many([record], [len(frame)], [second], [template])
        feed.add_many([record], [second], [template])
    expected.note("invalid_utf8")
    assert result.partial == expected.to_bytes()
    assert result.feed == feed.to_bytes()
    assert sum(len(s.matches) for s in Feed.from_bytes(result.feed).data.seconds.values()) == 1


def test_tail_records_come_back_in_order_up_to_the_limit() -> None:
    options = WorkerOptions(tail_filters=(("level=ERROR",),), max_tail=1)
    result = decode_result(process_batch(FRAMES, ARRIVAL, options))
    assert [r["message"] for r in result.tail] == [
        "Failed password for root from 203.0.113.7 port 22 ssh2"
    ]
    assert result.tail_skipped == 2  # the 503 access line and the JSON error


def test_senders_get_their_claimed_hosts_and_per_second_lines() -> None:
    """Runs of sender addresses: each parsed record's host field and event second are credited to
    its sender; rejected frames are not; "" (an archive replay) is no sender."""
    senders = [("10.0.0.1", 2), ("10.0.0.2", 5), ("", 2)]  # frames 0-1, 2-6 (5 and 6 rejected), 7-8
    result = decode_result(process_batch(FRAMES, ARRIVAL, WorkerOptions(sender_hostnames=1), 0, None, senders))
    assert result.claims == {"10.0.0.1": ["host"]}  # 10.0.0.2's records name no host
    by_sender: dict[str, int] = {}
    for second in Feed.from_bytes(result.feed).data.seconds.values():
        for sender, lines in second.senders.items():
            by_sender[sender] = by_sender.get(sender, 0) + lines
    assert by_sender == {"10.0.0.1": 2, "10.0.0.2": 3}
    plain = decode_result(process_batch(FRAMES, ARRIVAL, WorkerOptions()))  # as `analyze` calls it
    assert plain.claims == {} and all(not s.senders for s in Feed.from_bytes(plain.feed).data.seconds.values())


def test_claimed_hosts_stop_at_sender_hostnames() -> None:
    frames = [f"<134>1 2025-01-30T12:00:00Z {h} app - - - x".encode() for h in ("a", "b", "a", "c")]
    # one more than the limit comes back, so that SENDERS can say `hostnames_truncated`
    for limit, expected in [(1, ["a", "b"]), (2, ["a", "b", "c"]), (3, ["a", "b", "c"])]:
        options = WorkerOptions(sender_hostnames=limit)
        result = decode_result(process_batch(frames, ARRIVAL, options, 0, None, [("10.0.0.1", 4)]))
        assert result.claims == {"10.0.0.1": expected}


def test_quiet_gc_is_undone_after() -> None:
    """`analyze`'s main process quiets the cyclic GC while it merges, then puts it back as it was
    (a test session or a caller keeps running)."""
    import gc

    from logtallyd.pool.worker import quiet_gc

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with quiet_gc():
        assert gc.get_threshold()[0] == 20_000 and gc.get_freeze_count() >= max(frozen, 1)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
    with pytest.raises(KeyError):
        with quiet_gc():
            raise KeyError("an error inside")
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen


def test_quiet_process_gc_freezes_for_good() -> None:
    """A process of our own (a pool worker, the daemon once it listens) freezes what it holds
    and makes young collections rarer, for good: run in a child, as it never undoes itself."""
    code = ("import gc; from logtallyd.pool.worker import quiet_process_gc; "
            "before = gc.get_freeze_count(); quiet_process_gc(); "
            "print(before, gc.get_freeze_count() > 0, gc.get_threshold())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "True", "(20000,", "10,", "10)"]


def test_a_line_the_parser_fails_on_costs_that_line_not_its_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser bug (an exception on some line) rejects that line as `internal_error`, with its
    index for the rejects file; every other line of the batch is parsed and counted."""
    from logtallyd.pool import worker

    real = worker.parse

    def buggy(text: str, arrival: float, plan: object) -> object:
        if "BOOM" in text:
            raise IndexError("a parser bug")
        return real(text, arrival, plan)  # type: ignore[arg-type]

    monkeypatch.setattr(worker, "parse", buggy)
    frames = [b'{"msg": "a", "level": "error"}', b"BOOM one", b"<134>1 2025-01-30T12:00:00Z h app - - - ok",
              b"BOOM two", b""]
    for listeners in (None, [("tcp", 3), ("udp", 2)]):
        options = WorkerOptions(listener_parse={"udp": WorkerOptions().parse} if listeners else {})
        result = decode_result(process_batch(frames, ARRIVAL, options, 0, listeners))
        assert result.rejected == [(1, "internal_error"), (3, "internal_error"), (4, "empty")]
        partial = Partial.from_bytes(result.partial)
        assert (partial.received, partial.parsed) == (5, 2)
        assert partial.rejected == {"internal_error": 2, "empty": 1}
        assert partial.by_format == {"json": 1, "rfc5424": 1}
