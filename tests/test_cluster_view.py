"""The cluster's sans-I/O cores with plain values: the outbox that seals and bounds a node's
seconds, and the view that merges every node's into one `Stats` (in any interleaving), tracks who
is up and holds the watermark."""
from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.cluster.config import ClusterConfig
from logtallyd.cluster.outbox import Outbox
from logtallyd.cluster.view import ClusterView
from logtallyd.cluster.wire import NodeSecond, decode, encode
from logtallyd.daemon.config import ConfigError, decode_config
from logtallyd.records import SEVERITY_OF, Http, Record
from logtallyd.stats.aggregate import Partial
from logtallyd.stats.config import StatsConfig
from logtallyd.stats.windows import Stats

NOW = 1_700_000_000.0
START = int(NOW) - 600


def partial(rng: random.Random, lines: int) -> Partial:
    p = Partial()
    records, sizes, seconds = [], [], []
    for _ in range(lines):
        status = rng.choice([200, 404, 500])
        records.append(Record(format="access", message="m", ts=float(START), host=rng.choice(["h1", "h2"]),
                              service="web", level="ERROR" if status == 500 else "INFO",
                              severity=SEVERITY_OF["ERROR" if status == 500 else "INFO"],
                              http=Http(ip=f"10.0.0.{rng.randrange(20)}", method="GET", path="/",
                                        status=status, bytes=10, latency_ms=float(rng.randrange(1, 100)))))
        sizes.append(40)
        seconds.append(START + rng.randrange(300))
    p.add_many(records, sizes, seconds, [None] * lines)
    for _ in range(rng.randrange(3)):
        p.reject("empty", 1)
    return p


def node_messages(node: str, seed: int, seconds: int) -> list[NodeSecond]:
    """The seconds one node publishes: a few partials merged per second, heartbeats between."""
    rng = random.Random(seed)
    outbox = Outbox(node, "b0", 10_000)
    for tick in range(seconds):
        for _ in range(rng.randrange(3)):
            outbox.add(partial(rng, rng.randrange(1, 30)))
        outbox.seal(NOW - seconds + tick, START + tick)
    return [message for message, _ in outbox.queue]


def counted(view: ClusterView) -> dict:
    report = view.stats.report("all", NOW)
    return {k: report[k] for k in ("received", "parsed", "rejected", "bytes", "by_level", "by_host", "errors")} | {
        "status": report["http"]["by_status"], "lat_n": report["http"]["latency_ms"]["count"],
        "top": view.stats.top("ip", 20, "all", NOW)}


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 4))
def test_the_merged_view_does_not_depend_on_how_nodes_interleave(rng: random.Random, nodes: int) -> None:
    streams = [node_messages(f"n{i}", i, 4) for i in range(nodes)]
    # In stream order each node's seconds keep their order; nodes interleave any way.
    reference = ClusterView(StatsConfig(), 15, NOW)
    for stream in streams:
        for message in stream:
            reference.apply(message, NOW)
    shuffled = ClusterView(StatsConfig(), 15, NOW)
    queues = [list(s) for s in streams]
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        shuffled.apply(queue.pop(0), NOW)
    assert counted(shuffled) == counted(reference)
    # ... and equals one Stats fed every partial directly, as a single daemon would be.
    alone = Stats(StatsConfig(), NOW)
    for stream in streams:
        for message in stream:
            if message.partial:
                alone.merge(Partial.from_bytes(message.partial), NOW)
    assert counted(reference)["received"] == alone.report("all", NOW)["received"]
    assert counted(reference)["top"] == alone.top("ip", 20, "all", NOW)


def test_a_second_seen_twice_is_merged_once() -> None:
    view = ClusterView(StatsConfig(), 15, NOW)
    [first, second] = node_messages("n1", 1, 2)
    for message in (first, second, second, first):
        view.apply(message, NOW)
    assert view.duplicates == 2
    assert view.nodes["n1"].lines == first.received + second.received
    assert view.stats.received == first.received + second.received


def test_a_restarted_node_is_the_same_node_with_a_new_boot() -> None:
    view = ClusterView(StatsConfig(), 15, NOW)
    old = NodeSecond("n1", "a", 5, NOW - 1, START, 3, b"")
    new = NodeSecond("n1", "b", 0, NOW, START + 1, 4, b"")
    view.apply(old, NOW)
    view.apply(new, NOW)
    assert (view.nodes["n1"].restarts, view.nodes["n1"].lines, view.duplicates) == (1, 7, 0)


def test_watermark_is_the_slowest_live_node_and_a_silent_one_stops_holding_it() -> None:
    view = ClusterView(StatsConfig(), 5, NOW)
    view.apply(NodeSecond("fast", "a", 0, NOW, START + 100, 0, b""), NOW)
    view.apply(NodeSecond("slow", "a", 0, NOW - 5, START + 40, 0, b""), NOW)
    # silent exactly down_after_s: still up
    assert view.watermark(NOW) == START + 40
    table = view.table(NOW)
    assert [(r["node"], r["up"], r["lag_s"]) for r in table["nodes"]] == [("fast", True, 0), ("slow", True, 60)]
    assert view.watermark(NOW + 0.5) == START + 100  # past it: down, no longer holds it back
    assert [r["up"] for r in view.table(NOW + 0.5)["nodes"]] == [True, False]
    assert view.watermark(NOW + 100) is None  # nobody live


def test_a_node_second_written_without_the_feed_fields_still_decodes() -> None:
    class Before(msgspec.Struct, array_like=True, frozen=True):  # NodeSecond as older nodes send it
        node: str
        boot: str
        seq: int
        tick: float
        newest: int | None
        received: int
        partial: bytes

    old = Before("n1", "b0", 3, NOW, START, 7, b"p")
    message = decode(msgspec.msgpack.encode(old))
    assert message == NodeSecond("n1", "b0", 3, NOW, START, 7, b"p", b"", None)
    # ... and an older node reads a newer message, ignoring what it does not know.
    newer = NodeSecond("n1", "b0", 3, NOW, START, 7, b"p", b"feed", START - 10)
    assert msgspec.msgpack.decode(encode(newer), type=Before) == old


def test_an_empty_second_is_a_heartbeat() -> None:
    outbox = Outbox("n1", "b0", 10)
    message = outbox.seal(NOW, None)
    assert (message.partial, message.received, message.seq) == (b"", 0, 0)
    assert decode(outbox.head()[1]) == message  # type: ignore[index]


def test_outbox_holds_exactly_buffer_seconds_then_counts_what_it_drops() -> None:
    outbox = Outbox("n1", "b0", 3)
    rng = random.Random(1)
    lines = []
    for tick in range(3):
        p = partial(rng, 5)
        lines.append(p.received)
        outbox.add(p)
        outbox.seal(NOW + tick, START)
    assert (len(outbox.queue), outbox.unpublished_seconds) == (3, 0)  # at the bound: nothing lost
    head, _ = outbox.head()  # type: ignore[misc]
    outbox.seal(NOW + 3, START)  # one past it: the oldest goes, counted
    figures = outbox.figures()
    assert (figures.buffered, figures.unpublished_seconds, figures.unpublished_lines) == (3, 1, lines[0])
    # The dropped one's publish was in flight and the stream stored it: not lost after all.
    outbox.confirmed(head)
    assert (len(outbox.queue), outbox.published, outbox.unpublished_seconds, outbox.unpublished_lines) == (3, 1, 0, 0)
    second, data = outbox.head()  # type: ignore[misc]
    outbox.confirmed(second)
    assert (len(outbox.queue), outbox.bus_bytes) == (2, len(data) + len(encode(head)))


def test_a_durable_outbox_sends_a_second_only_once_a_snapshot_holds_it() -> None:
    """`publish = "durable"`: sealed seconds wait until the snapshot taken with them is written;
    one sealed while it is being written waits for the next; a snapshot keeps every unconfirmed
    second, and a restart queues them first, under their own boot and seq."""
    rng = random.Random(4)
    outbox = Outbox("n1", "b0", 10, durable=True)
    outbox.add(partial(rng, 5))
    outbox.seal(NOW, START)
    assert outbox.head() is None and outbox.figures().held == 1
    kept, mark = outbox.checkpoint()
    outbox.add(partial(rng, 3))
    outbox.seal(NOW + 1, START)  # while the snapshot is written
    outbox.durable_up_to(mark)
    first, _ = outbox.head()  # type: ignore[misc]
    assert (first.seq, len(outbox.queue), len(outbox.held)) == (0, 1, 1)
    assert [decode(b).seq for b in kept] == [0]
    kept, mark = outbox.checkpoint()  # the second not confirmed yet, and the one still held
    assert [decode(b).seq for b in kept] == [0, 1] and mark == 1
    restarted = Outbox("n1", "b1", 10, durable=True, restored=kept)
    restarted.seal(NOW + 2, START)
    order = []
    while (head := restarted.head()) is not None:
        order.append((head[0].boot, head[0].seq))
        restarted.confirmed(head[0])
    assert order == [("b0", 0), ("b0", 1)]  # durable already; b1's own waits for its snapshot
    assert restarted.figures().restored == 2 and len(restarted.held) == 1
    # A live outbox sends at once and keeps the same unconfirmed seconds in a snapshot.
    live = Outbox("n1", "b0", 10)
    live.seal(NOW, START)
    assert live.head() is not None and live.checkpoint() == ([live.head()[1]], -1)  # type: ignore[index]


def test_the_view_counts_a_second_republished_after_a_restart_once() -> None:
    rng = random.Random(5)
    outbox = Outbox("n1", "b0", 10)
    for tick in range(3):
        outbox.add(partial(rng, 4))
        outbox.seal(NOW + tick, START)
    kept, _ = outbox.checkpoint()
    view = ClusterView(StatsConfig(), 15.0, NOW)
    for message, _ in list(outbox.queue):  # all three reached the stream before the kill
        view.apply(message, NOW)
    restarted = Outbox("n1", "b1", 10, restored=kept)
    restarted.add(partial(rng, 2))
    restarted.seal(NOW + 4, START)
    for message, _ in list(restarted.queue):
        view.apply(message, NOW)
    assert view.stats.received == sum(m.received for m, _ in outbox.queue) + restarted.queue[-1][0].received
    assert view.duplicates == 3


def test_seconds_of_an_older_boot_sent_again_after_a_newer_ones_count_once() -> None:
    """Boot b0's kept seconds go out under b0 from b1, then b1's own, then from b2 the same b0
    seconds once more (past the stream's duplicate window): each is merged once."""
    rng = random.Random(6)
    b0 = Outbox("n1", "b0", 10)
    for tick in range(2):
        b0.add(partial(rng, 3))
        b0.seal(NOW + tick, START)
    kept = [data for _, data in b0.queue]
    b1 = Outbox("n1", "b1", 10, restored=kept)
    b1.add(partial(rng, 2))
    b1.seal(NOW + 3, START)
    b2 = Outbox("n1", "b2", 10, restored=kept)
    b2.seal(NOW + 4, START)
    view = ClusterView(StatsConfig(), 15.0, NOW)
    for outbox in (b0, b1, b2):
        for message, _ in list(outbox.queue):
            view.apply(message, NOW)
    expected = sum(m.received for m, _ in b0.queue) + b1.queue[-1][0].received
    assert view.stats.received == expected and view.nodes["n1"].lines == expected
    assert (view.duplicates, view.nodes["n1"].restarts) == (4, 2)


def test_durable_publishing_needs_snapshots() -> None:
    assert decode_config({"cluster": {"publish": "durable"}}).cluster.publish == "durable"
    # held seconds wait up to two snapshot intervals: the buffer must be longer, exactly
    at = {"publish": "durable", "buffer_seconds": 61}
    assert decode_config({"cluster": at, "state": {"snapshot_interval_s": 30}}).cluster.buffer_seconds == 61
    with pytest.raises(ConfigError, match="buffer_seconds must exceed twice state.snapshot_interval_s"):
        decode_config({"cluster": {**at, "buffer_seconds": 60}, "state": {"snapshot_interval_s": 30}})
    assert decode_config({"cluster": {"buffer_seconds": 60}, "state": {"snapshot_interval_s": 30}})  # live: no wait
    with pytest.raises(ConfigError, match="needs \\[state\\]"):
        decode_config({"cluster": {"publish": "durable"}, "state": {"directory": ""}})


def test_a_second_over_max_message_bytes_goes_as_several_messages_the_last_with_the_watermark() -> None:
    rng = random.Random(3)
    parts = [partial(rng, 20) for _ in range(6)]
    size = max(len(p.to_bytes()) for p in parts)
    outbox = Outbox("n1", "b0", 100, max_message_bytes=size * 2)
    outbox.seal(NOW - 1, START, START - 10)
    for p in parts:
        outbox.add(p)
    for i in range(3):
        outbox.add_feed(_feed_bytes(size // 2, START + i))
    last = outbox.seal(NOW, START + 5, START - 5)
    sealed = [m for m, _ in outbox.queue][1:]
    assert len(sealed) > 1 and sealed[-1] is last
    assert all(len(m.partial) + len(m.feed) <= size * 2 for m in sealed)
    assert [m.seq for m in sealed] == list(range(1, len(sealed) + 1))
    # Only the last says the node is past its detector watermark: the others keep the old one.
    assert [m.detect_watermark for m in sealed] == [START - 10] * (len(sealed) - 1) + [START - 5]
    assert sum(m.received for m in sealed) == sum(p.received for p in parts)
    assert sum(1 for m in sealed if m.feed) >= 1
    view = ClusterView(StatsConfig(), 15, NOW)
    for message, _ in outbox.queue:
        view.apply(message, NOW)
    assert view.stats.received == sum(p.received for p in parts)


def _feed_bytes(n_services: int, second: int) -> bytes:
    from logtallyd.detect.feed import FeedData, Second, ServiceTally

    services = {f"s{i}": ServiceTally(1, 0) for i in range(max(1, n_services // 12))}
    return msgspec.msgpack.encode(FeedData(seconds={second: Second(services=services)}))


def test_a_message_the_server_refuses_as_too_large_is_dropped_and_counted() -> None:
    outbox = Outbox("n1", "b0", 10)
    rng = random.Random(4)
    p = partial(rng, 5)
    outbox.add(p)
    outbox.seal(NOW, START)
    outbox.seal(NOW + 1, START)
    head, _ = outbox.head()  # type: ignore[misc]
    outbox.too_large(head)
    figures = outbox.figures()
    assert (figures.buffered, figures.unpublished_seconds, figures.unpublished_lines, figures.oversize) == (
        1, 1, p.received, 1)
    outbox.too_large(head)  # no longer the head: nothing more happens
    assert outbox.figures().oversize == 1


def test_seal_merges_the_second_into_one_partial() -> None:
    rng = random.Random(2)
    parts = [partial(rng, 10) for _ in range(3)]
    expected = Stats(StatsConfig(), NOW)
    outbox = Outbox("n1", "b0", 10)
    for p in parts:
        outbox.add(p)
        expected.merge(Partial.from_bytes(p.to_bytes()), NOW)
    message = outbox.seal(NOW, START)
    got = Stats(StatsConfig(), NOW)
    got.merge(Partial.from_bytes(message.partial), NOW)
    assert message.received == sum(p.received for p in parts)
    assert got.report("all", NOW)["http"]["by_status"] == expected.report("all", NOW)["http"]["by_status"]
    assert got.top("ip", 20, "all", NOW) == expected.top("ip", 20, "all", NOW)


@pytest.mark.parametrize(("key", "good", "bad"), [
    ("down_after_s", (1, 86400), (0.99, 86401)),
    ("buffer_seconds", (1, 86400), (0, 86401)),
    ("analyze_ack_wait_s", (1, 86400), (0.99, 86401)),
    ("analyze_max_age_s", (60, 604800), (59.9, 604801)),
    ("events_queue", (1, 1000000), (0, 1000001)),
    ("max_message_bytes", (65536, 67108864), (65535, 67108865)),
    ("max_events", (1, 10000000), (0, 10000001)),
])
def test_cluster_limits_sit_exactly_at_their_range(key: str, good: tuple, bad: tuple) -> None:
    for value in good:
        assert getattr(decode_config({"cluster": {key: value}}).cluster, key) == value
    for value in bad:
        with pytest.raises(ConfigError, match=rf"cluster\.{key}"):
            decode_config({"cluster": {key: value}})
    assert msgspec.convert({}, ClusterConfig).down_after_s == 15.0


def test_command_line_nats_and_node_win_and_meet_the_same_checks() -> None:
    from logtallyd.daemon.cli import apply_overrides

    config = apply_overrides(decode_config({"cluster": {"node": "file"}}), None, None, None,
                             nats="nats://127.0.0.1:4222", node="web-1")
    assert (config.cluster.nats, config.cluster.node) == ("nats://127.0.0.1:4222", "web-1")
    with pytest.raises(ConfigError, match="--nats/--node"):
        apply_overrides(decode_config({}), None, None, None, node="a.b")
