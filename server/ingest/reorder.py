"""Batch results back into stream order, between the worker pool and the merge: a sans-I/O core.

Workers finish in any order; what counts as `late`, the archive's line order and the detectors'
input depend on the order of merges, so results are released in batch-number order only.
"""
from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Reorder"]

T = TypeVar("T")


class Reorder(Generic[T]):
    """Holds finished items until every item numbered before them is in."""

    def __init__(self, first: int = 0) -> None:
        self.next_seq = first  # the number released next
        self._held: dict[int, T] = {}

    @property
    def waiting(self) -> int:
        """Items held for an earlier one."""
        return len(self._held)

    def put(self, seq: int, item: T) -> list[T]:
        """Item number `seq` is finished; returns the items now released, in order."""
        if seq < self.next_seq or seq in self._held:
            raise ValueError(f"item {seq} was already put")  # a bug in the shell: it would merge twice
        if seq != self.next_seq:
            self._held[seq] = item
            return []
        released = [item]
        self.next_seq += 1
        while self.next_seq in self._held:
            released.append(self._held.pop(self.next_seq))
            self.next_seq += 1
        return released
