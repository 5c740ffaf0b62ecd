"""The reorder buffer: items put in any order come out in sequence order, each once."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.ingest.reorder import Reorder

# (order of puts, released after each put, waiting after each put)
ORDERS = [
    ("in order", [0, 1, 2], [["0"], ["1"], ["2"]], [0, 0, 0]),
    ("reversed", [2, 1, 0], [[], [], ["0", "1", "2"]], [1, 2, 0]),
    ("one late", [1, 2, 0, 3], [[], [], ["0", "1", "2"], ["3"]], [1, 2, 0, 0]),
    ("gap filled in two steps", [0, 3, 1, 2], [["0"], [], ["1"], ["2", "3"]], [0, 1, 1, 0]),
]


@pytest.mark.parametrize("name, puts, released, waiting", ORDERS, ids=[o[0] for o in ORDERS])
def test_releases_in_sequence(name: str, puts: list[int], released: list[list[str]], waiting: list[int]) -> None:
    reorder: Reorder[str] = Reorder()
    got, held = [], []
    for seq in puts:
        got.append(reorder.put(seq, str(seq)))
        held.append(reorder.waiting)
    assert (got, held) == (released, waiting)
    assert reorder.next_seq == len(puts)


def test_starts_at_the_given_number() -> None:
    reorder: Reorder[str] = Reorder(first=5)
    assert reorder.put(6, "b") == []
    assert reorder.put(5, "a") == ["a", "b"]
    assert reorder.next_seq == 7


@pytest.mark.parametrize("puts", [[0, 0], [1, 1], [2, 0, 1, 1]])
def test_an_item_put_twice_is_a_bug(puts: list[int]) -> None:
    reorder: Reorder[int] = Reorder()
    for seq in puts[:-1]:
        reorder.put(seq, seq)
    with pytest.raises(ValueError):
        reorder.put(puts[-1], puts[-1])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 60).flatmap(lambda n: st.permutations(list(range(n)))))
def test_any_arrival_order_releases_in_sequence(order: list[int]) -> None:
    reorder: Reorder[int] = Reorder()
    released: list[int] = []
    for step, seq in enumerate(order, 1):
        released += reorder.put(seq, seq)
        put = set(order[:step])
        # Released: exactly the unbroken run from 0; held: everything put after a gap.
        run = next(i for i in range(len(order) + 1) if i not in put)
        assert released == list(range(run))
        assert reorder.next_seq == run
        assert reorder.waiting == len(put) - run
    assert released == sorted(order)
