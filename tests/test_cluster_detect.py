"""The fleet detectors' sans-I/O glue with plain values: node feeds carried by the outbox into a
view that runs the daemon's own `Engine` over the whole fleet, the cluster detector watermark
over the live nodes, event ids, and the ledger that publishes each event the stream lacks once."""
from __future__ import annotations

import msgspec
import pytest

from logtallyd.cluster.detect import FleetDetect
from logtallyd.cluster.ledger import EventLedger
from logtallyd.cluster.outbox import Outbox
from logtallyd.cluster.view import ClusterView
from logtallyd.cluster.wire import NodeSecond, event_id
from logtallyd.detect.config import DetectConfig, Pattern, SpikeConfig
from logtallyd.detect.events import ErrorSpike, PatternMatch, Resolved, ZScore, encode_event
from logtallyd.detect.feed import Feed, FeedData, Match, Second, ServiceTally, merge_feed, pattern_id
from logtallyd.stats.config import StatsConfig

NOW = 1_700_000_000.0
S = int(NOW) - 100  # the burst's event second

DETECT = DetectConfig(spike=SpikeConfig(window_s=10, threshold=30, resolve_below=5, overall_threshold=100000,
                                        overall_resolve_below=5), patterns=[])


def errors(n: int, second: int = S, service: str = "api") -> bytes:
    return _feed({second: Second(services={service: ServiceTally(n, n)})})


def _feed(seconds: dict[int, Second], pattern_ids: list[str] | None = None) -> bytes:
    return msgspec.msgpack.encode(FeedData(pattern_ids=pattern_ids or [], seconds=seconds, records=sum(
        s.lines() for s in seconds.values())))


class Fleet:
    """Nodes publishing seconds through their outboxes into one view, in the order given."""

    def __init__(self, down_after_s: float = 5.0) -> None:
        self.view = ClusterView(StatsConfig(), down_after_s, NOW, FleetDetect(DETECT))
        self.outboxes: dict[str, Outbox] = {}
        self.events: list = []

    def second(self, node: str, tick: float, watermark: int | None, *feeds: bytes) -> list:
        outbox = self.outboxes.setdefault(node, Outbox(node, "b0", 100))
        for feed in feeds:
            outbox.add_feed(feed)
        message = outbox.seal(tick, watermark, watermark)
        found = self.view.apply(message, NOW)
        self.events.extend(found)
        return found


def test_two_nodes_below_the_threshold_each_spike_together_once_both_watermarks_pass() -> None:
    fleet = Fleet()
    # Both nodes known, neither past the burst.
    assert fleet.second("a", NOW, S - 1) == []
    assert fleet.second("b", NOW, S - 1) == []
    assert fleet.second("a", NOW + 1, S - 1, errors(20)) == []  # 20 < 30 on its own
    assert fleet.second("b", NOW + 1, S - 1, errors(15)) == []  # 15 < 30 on its own
    assert fleet.second("a", NOW + 2, S + 1) == []  # b still holds the watermark at S - 1
    assert fleet.view.detect_watermark() == S - 1
    [spike] = fleet.second("b", NOW + 2, S + 1)
    assert isinstance(spike, ErrorSpike)
    assert (spike.key, spike.count, spike.ts) == ("api", 35, float(S))
    for tick in range(3, 8):  # later seconds without errors: no second spike
        fleet.second("a", NOW + tick, S + tick)
        fleet.second("b", NOW + tick, S + tick)
    assert [e.type for e in fleet.events] == ["error_spike"]
    figures = fleet.view.detect.figures()  # type: ignore[union-attr]
    assert (figures["records"], figures["events_error_spike"], figures["watermark"]) == (35, 1, S + 7)


def test_one_node_alone_stays_below_and_a_late_feed_is_counted_late() -> None:
    fleet = Fleet()
    fleet.second("a", NOW, S - 1, errors(20))
    fleet.second("a", NOW + 1, S + 5)
    fleet.second("b", NOW + 1, S + 5, errors(20))  # the fleet is past S: late, never a spike
    assert fleet.events == []
    assert fleet.view.detect.figures()["late_lines"] == 20  # type: ignore[union-attr]


def test_a_down_node_stops_holding_the_watermark() -> None:
    fleet = Fleet(down_after_s=5)
    fleet.second("slow", NOW, S - 50)
    fleet.second("fast", NOW, S + 10, errors(40, S))
    assert fleet.view.detect_watermark() == S - 50 and fleet.events == []
    # By the stream's clock "slow" is silent exactly down_after_s: still up.
    fleet.second("fast", NOW + 5, S + 15)
    assert fleet.view.detect_watermark() == S - 50 and fleet.events == []
    spike, resolved = fleet.second("fast", NOW + 6, S + 16)  # past it: down, no longer holds it back
    assert (spike.type, spike.count, resolved.type) == ("error_spike", 40, "resolved")  # window_s = 10
    assert fleet.view.detect_watermark() == S + 16
    # Back, it holds the watermark again, from where it is.
    fleet.second("slow", NOW + 7, S - 40)
    assert fleet.view.detect_watermark() == S - 40


def test_a_node_without_data_yet_does_not_hold_it_and_old_messages_decode_as_none() -> None:
    fleet = Fleet()
    fleet.second("idle", NOW, None)
    old = msgspec.msgpack.encode(["old", "b0", 0, NOW, S, 3, b""])  # written before feeds rode the bus
    fleet.view.apply(msgspec.msgpack.decode(old, type=NodeSecond), NOW)
    fleet.second("a", NOW, S + 1, errors(31))
    assert [e.type for e in fleet.events] == ["error_spike"]


def test_a_duplicate_second_is_consumed_once() -> None:
    view = ClusterView(StatsConfig(), 5, NOW, FleetDetect(DETECT))
    message = NodeSecond("a", "b0", 0, NOW, S - 1, 20, b"", errors(20), S - 1)
    view.apply(message, NOW)
    assert view.apply(message, NOW) == []
    view.apply(NodeSecond("a", "b0", 1, NOW + 1, S + 1, 0, b"", b"", S + 1), NOW)
    assert view.detect.figures()["records"] == 20  # type: ignore[union-attr]


def test_the_outbox_merges_a_seconds_feeds_under_either_pattern_list() -> None:
    one = Pattern(name="one", steps=["x"])
    two = Pattern(name="two", steps=["y"])
    match = Match((float(S), 0, 0), float(S), "1.2.3.4", None, None, "y", [(0, 0)])
    first = _feed({S: Second(services={"api": ServiceTally(2, 1)})}, [pattern_id(one)])
    second = _feed({S: Second(services={"api": ServiceTally(3, 2)}, matches=[match])}, [pattern_id(two)])
    outbox = Outbox("a", "b0", 10)
    outbox.add_feed(first)
    outbox.add_feed(second)
    sealed = Feed.from_bytes(outbox.seal(NOW, S, S).feed).data
    assert sealed.pattern_ids == [pattern_id(one), pattern_id(two)]
    assert (sealed.seconds[S].services["api"].lines, sealed.seconds[S].services["api"].errors) == (5, 3)
    assert sealed.seconds[S].matches[0].steps == [(1, 0)]  # still "two"'s step, under its new index
    assert sealed.records == 5
    assert outbox.seal(NOW + 1, S, S).feed == b""  # a second without feeds carries none


def test_merge_feed_is_merge_second_per_second() -> None:
    target = FeedData(seconds={S: Second(services={"a": ServiceTally(1, 1)})}, records=1)
    merge_feed(target, FeedData(seconds={S: Second(services={"a": ServiceTally(2, 0)}),
                                         S + 1: Second(services={"b": ServiceTally(4, 4)})}, records=6,
                                dropped_matches=2))
    assert {s: {k: (t.lines, t.errors) for k, t in sec.services.items()} for s, sec in target.seconds.items()} == {
        S: {"a": (3, 1)}, S + 1: {"b": (4, 4)}}
    assert (target.records, target.dropped_matches) == (7, 2)


# -- ids and the ledger -----------------------------------------------------------------------

SPIKE = ErrorSpike(float(S), "spike", "api", 35, 10, 30, [])


@pytest.mark.parametrize(("a", "b", "same"), [
    (SPIKE, ErrorSpike(float(S), "spike", "api", 99, 60, 50, []), True),  # figures differ: the same event
    (SPIKE, ErrorSpike(float(S + 1), "spike", "api", 35, 10, 30, []), False),
    (SPIKE, ErrorSpike(float(S), "spike", "web", 35, 10, 30, []), False),
    (SPIKE, Resolved(float(S), "spike", "api", "error_spike", 1, 35, float(S)), False),
    (Resolved(float(S), "spike", "api", "error_spike", 1, 35, 1.0),
     Resolved(float(S), "spike", "api", "error_spike", 2, 40, 2.0), True),
    (Resolved(float(S), "x", "k", "error_spike", 1, 35, 1.0), Resolved(float(S), "x", "k", "sender_flood", 1, 35, 1.0),
     False),
    (ZScore(float(S), "zscore", "api", "lines_per_s", 1, 1, 1, 5, 30, 10),
     ZScore(float(S), "zscore", "api", "error_rate", 1, 1, 1, 5, 30, 10), False),
    (PatternMatch(float(S), "pattern", "1.2.3.4", "p1", "ip", [], []),
     PatternMatch(float(S), "pattern", "1.2.3.4", "p2", "ip", [], []), False),
])
def test_event_ids_come_from_identity_fields_only(a, b, same: bool) -> None:  # type: ignore[no-untyped-def]
    assert event_id(a) == event_id(a) and len(event_id(a)) == 32
    assert (event_id(a) == event_id(b)) is same


def test_an_id_the_stream_holds_is_not_republished() -> None:
    ledger = EventLedger(keep_events=10, max_ids=100, queue_size=10)
    ledger.stored(event_id(SPIKE), encode_event(SPIKE))  # another view's, read from the stream
    ledger.found([SPIKE])
    assert ledger.head() is None
    other = ErrorSpike(float(S + 60), "spike", "api", 31, 10, 30, [])
    ledger.found([other])
    outgoing = ledger.head()
    assert outgoing is not None and outgoing.id == event_id(other)
    # Stored by another view while this one was about to send it: skipped at the head.
    ledger.stored(outgoing.id, outgoing.data)
    assert ledger.head() is None
    figures = ledger.figures()
    assert (figures.found, figures.skipped, figures.published, figures.stored) == (2, 2, 0, 2)
    assert ledger.recent(10) == [SPIKE, other]


def test_a_publish_is_counted_published_or_duplicate_and_read_back_once() -> None:
    ledger = EventLedger(keep_events=10, max_ids=100, queue_size=10)
    ledger.found([SPIKE])
    outgoing = ledger.head()
    assert outgoing is not None
    ledger.sent(outgoing, duplicate=True)  # the duplicate window: another view won the race
    assert (ledger.figures().duplicates, ledger.figures().queued) == (1, 0)
    assert ledger.stored(outgoing.id, outgoing.data) == SPIKE
    assert ledger.stored(outgoing.id, outgoing.data) is None  # stored twice (past the window): shown once
    assert (ledger.figures().repeated, ledger.recent(5)) == (1, [SPIKE])
    assert ledger.stored(None, b"not json") is None and ledger.figures().decode_errors == 1
    assert ledger.stored(None, encode_event(SPIKE)) is None  # no header: the id is computed


def test_the_queue_holds_exactly_events_queue_then_drops_the_oldest() -> None:
    ledger = EventLedger(keep_events=10, max_ids=100, queue_size=3)
    events = [ErrorSpike(float(S + i), "spike", "api", 31, 10, 30, []) for i in range(4)]
    ledger.found(events[:3])
    assert (ledger.figures().queued, ledger.figures().dropped) == (3, 0)
    ledger.found(events[3:])
    assert (ledger.figures().queued, ledger.figures().dropped) == (3, 1)
    assert ledger.head().event == events[1]  # type: ignore[union-attr]


def test_an_event_dropped_while_its_publish_was_in_flight_counts_as_published_only() -> None:
    ledger = EventLedger(keep_events=10, max_ids=100, queue_size=1)
    first, second = (ErrorSpike(float(S + i), "spike", "api", 31, 10, 30, []) for i in range(2))
    ledger.found([first])
    outgoing = ledger.head()
    ledger.found([second])  # the bound drops `first` while it is being sent
    assert ledger.figures().dropped == 1
    ledger.sent(outgoing, duplicate=False)  # type: ignore[arg-type]
    figures = ledger.figures()
    assert (figures.published, figures.dropped, figures.queued) == (1, 0, 1)
    assert figures.found == figures.published + figures.duplicates + figures.skipped + figures.dropped + figures.queued


def test_remembered_ids_are_bounded_at_max_ids() -> None:
    ledger = EventLedger(keep_events=2, max_ids=2, queue_size=10)
    events = [ErrorSpike(float(S + i), "spike", "api", 31, 10, 30, []) for i in range(3)]
    for event in events[:2]:
        ledger.stored(event_id(event), encode_event(event))
    assert list(ledger.ids) == [event_id(e) for e in events[:2]]
    ledger.stored(event_id(events[2]), encode_event(events[2]))
    assert list(ledger.ids) == [event_id(e) for e in events[1:]]
    assert ledger.recent(5) == events[1:]  # keep_events


def test_sighup_gives_the_fleet_detectors_the_new_thresholds() -> None:
    fleet = Fleet()
    fleet.second("a", NOW, S - 1, errors(20))
    fleet.view.detect.reconfigure(msgspec.structs.replace(  # type: ignore[union-attr]
        DETECT, spike=msgspec.structs.replace(DETECT.spike, threshold=20)))
    [spike] = fleet.second("a", NOW + 1, S + 1)
    assert (spike.type, spike.count, spike.threshold) == ("error_spike", 20, 20)
