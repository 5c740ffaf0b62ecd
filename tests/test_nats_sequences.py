"""The JetStream source's sequence bookkeeping with plain values: counted once, acknowledged only
once durable, redeliveries skipped; and how a message splits into lines."""
from __future__ import annotations

import msgspec
import pytest

from logtallyd.ingest.sequences import NatsPosition, SequenceBook, split_lines


def test_a_message_is_applied_when_its_batch_merges_and_ackable_when_durable() -> None:
    book = SequenceBook("S")
    for seq, batch in ((1, 0), (2, 0), (3, 1)):
        assert book.accept(seq)
        book.submitted(seq, batch)
    assert book.position(-1) == NatsPosition("S", 0)  # nothing merged yet: a snapshot covers none
    assert book.position(0) == NatsPosition("S", 2)
    assert book.acked == 0  # applied is not durable
    assert book.made_durable(NatsPosition("S", 2)) == NatsPosition("S", 2)
    assert book.position(1).seq == 3
    assert book.made_durable(NatsPosition("S", 3)).covers(3)


def test_redeliveries_after_a_restart_are_skipped_up_to_the_snapshot() -> None:
    book = SequenceBook("S", NatsPosition("S", 5))
    assert [book.accept(seq) for seq in (4, 5, 6)] == [False, False, True]
    assert book.duplicates == 2
    # The first snapshot after the restart acknowledges the skipped redeliveries too.
    assert book.made_durable(book.position(-1)).covers(5)


def test_a_redelivery_within_one_run_is_skipped_while_its_first_copy_is_in_the_pipeline() -> None:
    book = SequenceBook("S")
    assert book.accept(1)
    book.submitted(1, 0)
    assert not book.accept(1)  # ack_wait passed before the snapshot: JetStream sent it again
    assert book.position(0).seq == 1


def test_a_message_redelivered_out_of_order_is_counted_once() -> None:
    book = SequenceBook("S")
    for seq in (1, 2, 4, 5):  # 3 was delivered but lost in the client: never seen
        assert book.accept(seq)
        book.submitted(seq, 0)
    position = book.position(0)
    assert position == NatsPosition("S", 2, (4, 5)) and not position.covers(3)
    assert book.made_durable(position) == position  # 3 is not acknowledged: the server resends it
    assert book.accept(3)  # ...after ack_wait, below the highest sequence seen
    book.submitted(3, 1)
    assert not book.accept(3) and not book.accept(4)
    assert book.position(1) == NatsPosition("S", 5)
    assert book.duplicates == 2


def test_a_gap_below_the_highest_sequence_survives_a_restart() -> None:
    book = SequenceBook("S")
    for seq in (1, 3, 4):
        book.submitted(seq, 0)
    snapshot = msgspec.msgpack.decode(msgspec.msgpack.encode(book.position(0)), type=NatsPosition)
    restarted = SequenceBook("S", snapshot)
    assert [restarted.accept(seq) for seq in (1, 2, 3, 4, 5)] == [False, True, False, False, True]
    assert restarted.applied == 4 and restarted.floor == 1


def test_the_server_ack_floor_bounds_the_record_across_other_subjects_gaps() -> None:
    book = SequenceBook("S")
    for seq in (2, 5, 9):  # the stream's other sequences are other subjects', never delivered
        book.submitted(seq, 0)
    assert book.position(0) == NatsPosition("S", 0, (2, 5, 9))
    book.ack_floor(5)
    assert book.position(0) == NatsPosition("S", 5, (9,)) and book.counted_above_floor == 1
    assert not book.accept(3) and book.accept(10)


def test_an_old_snapshot_without_the_set_is_resumed() -> None:
    old = msgspec.msgpack.encode(["S", 7])  # the position as recorded before `above` existed
    assert SequenceBook("S", msgspec.msgpack.decode(old, type=NatsPosition)).floor == 7


def test_a_snapshot_of_another_stream_is_not_resumed() -> None:
    book = SequenceBook("S", NatsPosition("OTHER", 9))
    assert book.accept(1) and book.applied == 0
    assert book.made_durable(NatsPosition("OTHER", 9)) == NatsPosition("S", 0)


def test_a_durable_position_never_moves_back() -> None:
    book = SequenceBook("S")
    book.submitted(1, 0)
    book.submitted(3, 1)
    first = book.position(1)
    assert book.made_durable(first) == NatsPosition("S", 1, (3,))
    assert book.made_durable(NatsPosition("S", 1)) == first  # an older snapshot's write finishing late


@pytest.mark.parametrize("data, lines", [
    (b"one", [b"one"]),
    (b"one\n", [b"one"]),
    (b"one\r\ntwo\n\nthree", [b"one", b"two", b"three"]),
    (b"", []),
    (b"\n\r\n", []),
])
def test_a_message_is_one_or_more_lf_separated_lines(data: bytes, lines: list[bytes]) -> None:
    assert split_lines(data) == lines


def test_the_source_needs_a_nats_server_and_an_ack_wait_past_two_snapshots() -> None:
    from logtallyd.daemon.config import ConfigError, decode_config

    with pytest.raises(ConfigError, match=r"sources\.nats\.subjects needs cluster\.nats"):
        decode_config({"sources": {"nats": {"subjects": ["logs.>"]}}})
    base = {"cluster": {"nats": "nats://127.0.0.1:4222"}, "state": {"snapshot_interval_s": 5.0}}
    with pytest.raises(ConfigError, match=r"sources\.nats\.ack_wait_s must exceed"):
        decode_config({**base, "sources": {"nats": {"subjects": ["logs.>"], "ack_wait_s": 10.0}}})  # at the limit
    config = decode_config({**base, "sources": {"nats": {"subjects": ["logs.>"], "ack_wait_s": 10.01}}})
    assert config.sources.nats.ack_wait_s == 10.01


def test_the_command_line_adds_subjects_and_sets_the_server() -> None:
    from logtallyd.daemon.cli import apply_nats_overrides
    from logtallyd.daemon.config import Config

    config = apply_nats_overrides(Config(), "nats://127.0.0.1:4222", "web-1", ["logs.>"])
    assert (config.cluster.nats, config.cluster.node, config.sources.nats.subjects) == (
        "nats://127.0.0.1:4222", "web-1", ["logs.>"])


def test_the_archive_keeps_every_line_but_those_of_the_nats_source() -> None:
    from logtallyd.ingest.batching import Batch
    from logtallyd.ingest.pipeline import _archived_frames

    batch = Batch(0.0)
    batch.add([b"t1", b"t2"], "1.2.3.4:5", "tcp")
    batch.add([b"n1"], "nats", "nats")
    batch.add([b"u1"], "1.2.3.4:6", "udp")
    assert _archived_frames(batch) == [b"t1", b"t2", b"u1"]
