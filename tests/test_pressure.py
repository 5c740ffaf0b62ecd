"""The flow-control cores: the in-flight bound and the pause/resume rule with two water marks."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.ingest.pressure import PAUSE, RESUME, InFlight, Pressure, Transition

# high = 100 bytes (low 50 by default), max_ready = 4: (buffered bytes, ready batches, transition)
STEPS = [
    (0, 0, None),
    (99, 3, None),  # one byte and one batch below the high marks
    (100, 0, PAUSE),  # exactly at the high mark
    (100, 0, None),  # asked again: already paused
    (150, 5, None),
    (50, 0, None),  # exactly at the low mark is not below it
    (49, 1, None),  # below the low mark, but a batch still waits for the pool
    (49, 0, RESUME),
    (49, 0, None),  # asked again: already reading
    (0, 4, PAUSE),  # too many batches waiting, whatever the bytes
    (0, 3, None),
    (0, 0, RESUME),
]


def test_pauses_at_the_high_mark_and_resumes_below_the_low_one() -> None:
    pressure = Pressure(high_bytes=100, max_ready=4)
    got = [(b, r, pressure.update(b, r)) for b, r, _ in STEPS]
    assert got == STEPS
    assert (pressure.paused, pressure.pauses) == (False, 2)


def test_the_low_mark_can_be_set() -> None:
    pressure = Pressure(high_bytes=100, max_ready=4, low_bytes=90)
    assert [pressure.update(b, 0) for b in (100, 90, 89)] == [PAUSE, None, RESUME]


def test_transitions_are_sentinels() -> None:
    assert (PAUSE, RESUME) == (Transition.PAUSE, Transition.RESUME)
    assert PAUSE is not RESUME and not isinstance(PAUSE, (bool, int))


figures = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 8)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(figures, st.integers(1, 200), st.integers(1, 6))
def test_pause_once_resume_once_and_asking_twice_changes_nothing(
    steps: list[tuple[int, int]], high: int, max_ready: int
) -> None:
    pressure = Pressure(high, max_ready)
    paused, pauses = False, 0
    for buffered, ready in steps:
        over = buffered >= high or ready >= max_ready
        clear = buffered < high // 2 and ready == 0
        got = pressure.update(buffered, ready)
        # One transition per change of state, exactly when the rule calls for it.
        if not paused and over:
            assert got is PAUSE
            paused, pauses = True, pauses + 1
        elif paused and clear:
            assert got is RESUME
            paused = False
        else:
            assert got is None
        assert pressure.update(buffered, ready) is None  # idempotent
        assert (pressure.paused, pressure.pauses) == (paused, pauses)


# -- in flight --------------------------------------------------------------------------------


def test_at_most_limit_batches_in_flight_until_merged() -> None:
    flight: InFlight[str] = InFlight(2)
    assert flight.idle and flight.start() == []
    flight.queue(["a", "b", "c"])
    assert flight.start() == ["a", "b"]
    assert flight.start() == []  # asking again starts nothing more
    assert (flight.in_flight, list(flight.ready)) == (2, ["c"])
    flight.finish()
    assert flight.start() == ["c"]
    flight.finish()
    flight.finish()
    assert flight.idle


def test_a_larger_limit_applies_at_the_next_start() -> None:
    flight: InFlight[int] = InFlight(1)
    flight.queue([1, 2, 3])
    assert flight.start() == [1]
    flight.limit = 3
    assert flight.start() == [2, 3]


def test_finishing_more_than_started_is_a_bug() -> None:
    flight: InFlight[int] = InFlight(1)
    with pytest.raises(ValueError):
        flight.finish()
    with pytest.raises(ValueError):
        InFlight(0)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5), st.lists(st.one_of(st.integers(1, 4), st.none()), max_size=60))
def test_batches_start_in_queue_order_and_never_past_the_limit(limit: int, ops: list[int | None]) -> None:
    flight: InFlight[int] = InFlight(limit)
    queued = started = 0
    order: list[int] = []
    for op in ops:
        if op is None:  # one batch merged
            if flight.in_flight:
                flight.finish()
        else:  # `op` batches cut
            flight.queue(range(queued, queued + op))
            queued += op
        now = flight.start()
        order += now
        started += len(now)
        assert flight.in_flight <= limit
        assert not flight.ready or flight.in_flight == limit  # nothing waits while a place is free
    assert order == list(range(started))
    assert started + len(flight.ready) == queued


def test_new_marks_apply_while_paused() -> None:
    pressure = Pressure(high_bytes=100, max_ready=4)
    assert pressure.update(100, 0) is PAUSE
    pressure.reconfigure(high_bytes=400, max_ready=4)  # low mark now 200
    assert pressure.update(199, 0) is RESUME
    assert pressure.update(399, 3) is None and pressure.update(400, 0) is PAUSE
    assert pressure.pauses == 2
