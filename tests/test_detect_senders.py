"""The sender detectors' core with plain per-second counts: silent, back, flood, the bound."""
from __future__ import annotations

import pytest

from logtallyd.detect.config import DetectConfig, SendersConfig
from logtallyd.detect.engine import Engine
from logtallyd.detect.events import Resolved, SenderBack, SenderFlood, SenderSilent
from logtallyd.detect.feed import Feed, Second
from logtallyd.detect.senders import SendersDetector, SendersState
from logtallyd.records import Record

T0 = 1_700_000_000


def detector(**kw: object) -> SendersDetector:
    config = DetectConfig(senders=SendersConfig(**kw))  # type: ignore[arg-type]
    return SendersDetector(config, SendersState())


def run(det: SendersDetector, counts: dict[int, dict[str, int]], until: int) -> list:
    events = []
    for second in range(T0, until):
        data = counts.get(second)
        events += det.step(second, Second(senders=data) if data else None)
    return events


def test_a_steady_sender_that_stops_is_silent_then_back() -> None:
    det = detector(min_samples=3, silent_multiple=3.0, min_silent_s=5)
    # one line every 2 s for 10 s, a pause of 20 s, then again; "b" sends every second throughout
    counts: dict[int, dict[str, int]] = {}
    for s in range(T0, T0 + 50):
        counts[s] = {"b": 1}
    for s in [*range(T0, T0 + 10, 2), T0 + 30]:
        counts[s]["a"] = 1
    events = run(det, counts, T0 + 31)
    # last line at +8; usual gap 2: silent once more than max(5, 3 * 2) seconds passed, at +15
    assert events == [
        SenderSilent(float(T0 + 15), "senders", "a", 7, 2.0, float(T0 + 8)),
        SenderBack(float(T0 + 30), "senders", "a", 22, 2.0, 1),
    ]


def test_a_sender_without_a_rhythm_yet_is_not_silent() -> None:
    det = detector(min_samples=5, silent_multiple=1.0, min_silent_s=1)
    counts = {T0: {"a": 1}, T0 + 1: {"a": 1}, T0 + 2: {"a": 1}}  # two gaps learned, five needed
    assert run(det, counts, T0 + 100) == []


def test_silence_is_judged_in_seconds_without_data_too() -> None:
    det = detector(min_samples=2, silent_multiple=2.0, min_silent_s=3)
    counts = {s: {"a": 1} for s in range(T0, T0 + 5)}
    events = run(det, counts, T0 + 20)
    assert [type(e) for e in events] == [SenderSilent]
    assert events[0].ts == T0 + 8  # last line at +4, more than 3 s (and 2 x 1 s) later


def test_flood_fires_once_and_resolves_without_raising_the_baseline() -> None:
    det = detector(min_samples=5, flood_factor=10.0, flood_min_lines=100)
    counts = {s: {"a": 20} for s in range(T0, T0 + 10)}
    counts[T0 + 10] = {"a": 500}
    counts[T0 + 11] = {"a": 900}
    counts[T0 + 12] = {"a": 20}
    counts[T0 + 13] = {"a": 150}  # under 10 x 20
    events = run(det, counts, T0 + 14)
    assert events == [
        SenderFlood(float(T0 + 10), "senders", "a", 500, 20.0, 25.0),
        Resolved(float(T0 + 12), "senders", "a", "sender_flood", 20, 900, float(T0 + 10)),
    ]


@pytest.mark.parametrize("lines", [99, 100])
def test_flood_needs_flood_min_lines(lines: int) -> None:
    det = detector(min_samples=2, flood_factor=2.0, flood_min_lines=100)
    counts = {s: {"a": 1} for s in range(T0, T0 + 5)}
    counts[T0 + 5] = {"a": lines}
    events = run(det, counts, T0 + 6)
    assert [type(e) for e in events] == ([SenderFlood] if lines == 100 else [])


def test_senders_past_max_senders_are_forgotten_and_counted() -> None:
    det = detector(max_senders=2)
    run(det, {T0: {"a": 1}, T0 + 1: {"b": 1}, T0 + 2: {"a": 1}, T0 + 3: {"c": 1}}, T0 + 4)
    assert list(det.state.senders) == ["a", "c"]  # "b" was the least recently seen
    assert det.figures() == {"forgotten_senders": 1}
    det.reconfigure(DetectConfig(senders=SendersConfig(max_senders=1)))
    assert list(det.state.senders) == ["c"] and det.figures() == {"forgotten_senders": 2}


def test_the_engine_steps_sender_counts_from_feeds() -> None:
    """A worker's feed carries each record's sender; the engine's events come from those counts."""
    config = DetectConfig(senders=SendersConfig(min_samples=2, silent_multiple=2.0, min_silent_s=3))
    engine = Engine(config)
    for second in range(T0, T0 + 4):
        feed = Feed(config)
        records = [Record("raw", message="x", ts=second + 0.5)] * 2
        feed.add_many(records, [second, second], [None, None], None, ["10.0.0.1", ""])
        assert feed.data.seconds[second].senders == {"10.0.0.1": 1}  # "" is no sender
        engine.consume(Feed.from_bytes(feed.to_bytes()))
    events = engine.advance(T0 + 10)
    assert [(e.type, e.key) for e in events] == [("sender_silent", "10.0.0.1")]
    assert engine.stats()["events_sender_silent"] == 1


def naive_silences(counts: dict[int, dict[str, int]], until: int, config: SendersConfig) -> list[tuple[int, str]]:
    """The silence rule read straight off the config, every sender checked every second."""
    alpha = 2.0 / (config.window + 1)
    last: dict[str, int] = {}
    gap: dict[str, float] = {}
    gaps: dict[str, int] = {}
    silent: set[str] = set()
    fired = []
    for second in range(T0, until):
        for sender in sorted(counts.get(second, {})):
            if sender in last:
                if sender in silent:
                    silent.discard(sender)
                else:
                    g = second - last[sender]
                    gap[sender] = g if not gaps.get(sender) else gap[sender] + alpha * (g - gap[sender])
                    gaps[sender] = gaps.get(sender, 0) + 1
            last[sender] = second
        for sender in sorted(last):
            away = second - last[sender]
            if (sender not in silent and gaps.get(sender, 0) >= config.min_samples
                    and away > config.min_silent_s and away > config.silent_multiple * gap[sender]):
                silent.add(sender)
                fired.append((second, sender))
    return fired


@pytest.mark.parametrize("seed", range(5))
def test_the_deadline_heap_finds_the_same_silences_as_checking_every_sender(seed: int) -> None:
    import random

    rng = random.Random(seed)
    config = SendersConfig(min_samples=3, silent_multiple=2.0, min_silent_s=2, window=5)
    counts: dict[int, dict[str, int]] = {}
    for sender in "abcdefgh":
        period = rng.randint(1, 4)
        second = T0 + rng.randint(0, 3)
        while second < T0 + 300:
            counts.setdefault(second, {})[sender] = 1
            second += period + (rng.randint(5, 30) if rng.random() < 0.05 else 0)
    det = SendersDetector(DetectConfig(senders=config), SendersState())
    got = [(int(e.ts), e.key) for e in run(det, counts, T0 + 320) if isinstance(e, SenderSilent)]
    assert got == naive_silences(counts, T0 + 320, config) and got
    assert len(det._deadlines) <= 4 * len(det.state.senders) + 64  # stale entries are dropped
