"""The batcher core: frames in, numbered batches out, cut by lines, bytes and deadline."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.ingest.batching import Batch, Batcher


def shape(batches: list[Batch]) -> list[tuple[int, list[bytes]]]:
    return [(b.seq, b.frames) for b in batches]


# (batch_lines, batch_bytes, adds, expected cut after each add as (seq, frames), open frames left)
CUTS = [
    ("below every limit", 3, 100, [[b"a", b"b"]], [[]], [b"a", b"b"]),
    ("exactly batch_lines", 3, 100, [[b"a", b"b", b"c"]], [[(0, [b"a", b"b", b"c"])]], None),
    ("one line over batch_lines", 3, 100, [[b"a", b"b", b"c", b"d"]], [[(0, [b"a", b"b", b"c"])]], [b"d"]),
    ("one large add cuts several", 2, 100, [[b"1", b"2", b"3", b"4", b"5"]],
     [[(0, [b"1", b"2"]), (1, [b"3", b"4"])]], [b"5"]),
    ("lines add up across adds", 2, 100, [[b"a"], [b"b", b"c"], [b"d"]],
     [[], [(0, [b"a", b"b"])], [(1, [b"c", b"d"])]], None),
    ("one byte below batch_bytes", 100, 8, [[b"aaaa"], [b"bbb"]], [[], []], [b"aaaa", b"bbb"]),
    ("exactly batch_bytes", 100, 8, [[b"aaaa"], [b"bbbb"]], [[], [(0, [b"aaaa", b"bbbb"])]], None),
    ("one frame past batch_bytes", 100, 8, [[b"x" * 20], [b"y"]], [[(0, [b"x" * 20])], []], [b"y"]),
    ("an empty add does nothing", 2, 8, [[]], [[]], None),
]


@pytest.mark.parametrize("name, lines, nbytes, adds, cuts, left", CUTS, ids=[c[0] for c in CUTS])
def test_cuts_by_size(name: str, lines: int, nbytes: int, adds: list[list[bytes]],
                      cuts: list[list[tuple[int, list[bytes]]]], left: list[bytes] | None) -> None:
    batcher = Batcher(lines, nbytes, batch_delay_s=1.0)
    got = [shape(batcher.add(frames, "peer", "tcp", 10.0)) for frames in adds]
    assert got == cuts
    assert (batcher.open.frames if batcher.open is not None else None) == left


def test_deadline_is_arrival_of_the_first_frame_plus_delay() -> None:
    batcher = Batcher(10, 1000, batch_delay_s=0.5)
    assert batcher.deadline() is None
    assert batcher.cut(100.0) == []
    batcher.add([b"a"], "p", "tcp", 10.0)
    assert batcher.deadline() == 10.5
    batcher.add([b"b"], "p", "tcp", 10.25)  # a later frame does not push the deadline back
    assert batcher.deadline() == 10.5
    assert batcher.cut(10.49) == []
    [batch] = batcher.cut(10.5)
    assert (batch.seq, batch.frames, batch.arrival) == (0, [b"a", b"b"], 10.0)
    assert batcher.deadline() is None and batcher.open is None
    assert batcher.cut(11.0) == [] and batcher.flush() == []


def test_a_cut_by_size_starts_a_new_deadline() -> None:
    batcher = Batcher(2, 1000, batch_delay_s=0.5)
    [first] = batcher.add([b"a", b"b", b"c"], "p", "tcp", 20.0)
    assert first.arrival == 20.0
    assert batcher.deadline() == 20.5  # the rest of the same add arrived at the same time
    [second] = batcher.add([b"d"], "p", "tcp", 20.1)
    assert (second.seq, second.frames, second.arrival) == (1, [b"c", b"d"], 20.0)
    assert batcher.deadline() is None
    batcher.add([b"e"], "p", "tcp", 30.0)
    assert batcher.deadline() == 30.5


def test_batches_are_numbered_in_stream_order_whatever_cuts_them() -> None:
    batcher = Batcher(2, 1000, batch_delay_s=0.5)
    seqs = [b.seq for b in batcher.add([b"1", b"2"], "p", "tcp", 0.0)]  # size
    batcher.add([b"3"], "p", "tcp", 1.0)
    seqs += [b.seq for b in batcher.cut(1.5)]  # deadline
    batcher.add([b"4"], "p", "tcp", 2.0)
    seqs += [b.seq for b in batcher.flush()]  # shutdown
    assert seqs == [0, 1, 2]
    assert batcher.next_seq == 3


def test_peers_and_listeners_are_run_length_per_batch() -> None:
    batcher = Batcher(4, 1000, batch_delay_s=1.0)
    batcher.add([b"a", b"b"], "10.0.0.1:5000", "tcp", 0.0)
    batcher.add([b"c"], "10.0.0.1:5000", "tcp", 0.0)
    [first] = batcher.add([b"d", b"e"], "10.0.0.2:514", "udp", 0.0)
    [second] = batcher.flush()
    assert first.peers == [("10.0.0.1:5000", 3), ("10.0.0.2:514", 1)]
    assert first.listeners == [("tcp", 3), ("udp", 1)]
    assert [first.peer_of(i) for i in range(5)] == ["10.0.0.1:5000"] * 3 + ["10.0.0.2:514", "?"]
    assert (second.frames, second.peers, second.listeners) == ([b"e"], [("10.0.0.2:514", 1)], [("udp", 1)])
    assert (first.nbytes, second.nbytes) == (4, 1)


def test_a_smaller_batch_lines_applies_to_the_open_batch_at_the_next_add() -> None:
    batcher = Batcher(5, 1000, batch_delay_s=1.0)
    batcher.add([b"a", b"b", b"c"], "p", "tcp", 0.0)
    batcher.batch_lines = 2
    assert shape(batcher.add([b"d", b"e", b"f"], "p", "tcp", 1.0)) == [(0, [b"a", b"b", b"c"]), (1, [b"d", b"e"])]
    assert batcher.open is not None and batcher.open.frames == [b"f"]


@pytest.mark.parametrize("lines, nbytes", [(0, 10), (10, 0)])
def test_limits_must_be_positive(lines: int, nbytes: int) -> None:
    with pytest.raises(ValueError):
        Batcher(lines, nbytes, 0.1)


# -- properties -------------------------------------------------------------------------------

PEERS = ["a:1", "b:2", "c:3"]
adds = st.lists(
    st.tuples(st.lists(st.binary(max_size=12), max_size=15), st.sampled_from(PEERS),
              st.floats(min_value=0.0, max_value=0.3)),  # frames, peer, time since the last add
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(adds, st.integers(1, 8), st.integers(1, 60), st.floats(min_value=0.0, max_value=0.5))
def test_frames_are_never_lost_or_duplicated_across_cuts(
    steps: list[tuple[list[bytes], str, float]], lines: int, nbytes: int, delay: float
) -> None:
    batcher = Batcher(lines, nbytes, delay)
    sent: list[tuple[bytes, str]] = []
    cut: list[Batch] = []
    now = 0.0
    for frames, peer, dt in steps:
        now += dt
        cut += batcher.cut(now)  # as a shell polling its deadline
        sent += [(f, peer) for f in frames]
        cut += batcher.add(frames, peer, "tcp", now)
    cut += batcher.flush()
    got = [(f, peer) for b in cut for f, peer in zip(b.frames, _expand(b.peers))]
    assert got == sent
    assert [b.seq for b in cut] == list(range(len(cut)))
    for b in cut:
        assert 1 <= len(b.frames) <= lines
        assert b.nbytes == sum(map(len, b.frames))
        assert sum(n for _, n in b.listeners) == len(b.frames)
        assert all(x[0] != y[0] for x, y in zip(b.peers, b.peers[1:]))  # runs are maximal
    assert batcher.open is None and batcher.deadline() is None


def _expand(runs: list[tuple[str, int]]) -> list[str]:
    return [name for name, count in runs for _ in range(count)]
