"""Frames into batches, between the framer and the worker pool: a sans-I/O core.

The shell hands frames and a clock value to `Batcher.add`, cuts by the deadline when `deadline()`
says so, and sends the batches it gets back to the workers. Sizes, not the shell, decide a cut.
"""
from __future__ import annotations

__all__ = ["Batch", "Batcher"]


class Batch:
    """Frames parsed by one worker call, with who sent them (run-length, in frame order)."""

    __slots__ = ("frames", "peers", "listeners", "nbytes", "arrival", "seq")

    def __init__(self, arrival: float) -> None:
        self.seq = -1  # numbered when cut, in stream order
        self.frames: list[bytes] = []
        self.peers: list[tuple[str, int]] = []  # run-length: (peer, number of frames)
        self.listeners: list[tuple[str, int]] = []  # run-length: (listener name, number of frames)
        self.nbytes = 0
        self.arrival = arrival

    def add(self, frames: list[bytes], peer: str, listener: str) -> None:
        self.frames.extend(frames)
        self.nbytes += sum(map(len, frames))
        _extend_run(self.peers, peer, len(frames))
        _extend_run(self.listeners, listener, len(frames))

    def peer_of(self, index: int) -> str:
        for peer, count in self.peers:
            if index < count:
                return peer
            index -= count
        return "?"


def _extend_run(runs: list[tuple[str, int]], name: str, count: int) -> None:
    if runs and runs[-1][0] == name:
        runs[-1] = (name, runs[-1][1] + count)
    else:
        runs.append((name, count))


class Batcher:
    """One open batch; cut when it holds `batch_lines` frames or `batch_bytes` bytes, or when
    `batch_delay_s` has passed since its first frame arrived (so a quiet sender is not held back).

    The limits are plain attributes: a new value applies from the next `add`.
    """

    def __init__(self, batch_lines: int, batch_bytes: int, batch_delay_s: float) -> None:
        if batch_lines < 1 or batch_bytes < 1:
            raise ValueError("batch_lines and batch_bytes must be positive")
        self.batch_lines = batch_lines
        self.batch_bytes = batch_bytes
        self.batch_delay_s = batch_delay_s
        self.next_seq = 0  # the number the open (or next) batch gets when cut
        self._open: Batch | None = None

    @property
    def open(self) -> Batch | None:
        """The batch being filled, if any."""
        return self._open

    def add(self, frames: list[bytes], peer: str, listener: str, now: float) -> list[Batch]:
        """Take frames from one sender; returns the batches cut by size, oldest first."""
        cut: list[Batch] = []
        while frames:
            batch = self._open
            if batch is None:
                batch = self._open = Batch(now)
            # One read can bring many lines: a batch never takes more than batch_lines.
            room = self.batch_lines - len(batch.frames)
            if room <= 0:  # the limit shrank under an open batch
                cut.append(self._close(batch))
                continue
            if len(frames) <= room:
                taken, frames = frames, []
            else:
                taken, frames = frames[:room], frames[room:]
            batch.add(taken, peer, listener)
            if len(batch.frames) >= self.batch_lines or batch.nbytes >= self.batch_bytes:
                cut.append(self._close(batch))
        return cut

    def deadline(self) -> float | None:
        """When the open batch must be cut (its arrival plus `batch_delay_s`); None if none is open."""
        if self._open is None:
            return None
        return self._open.arrival + self.batch_delay_s

    def cut(self, now: float) -> list[Batch]:
        """The open batch, if its deadline has come by `now`."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        return self.flush()

    def flush(self) -> list[Batch]:
        """The open batch, whatever its age (the deadline timer fired, end of input, shutdown)."""
        if self._open is None:
            return []
        return [self._close(self._open)]

    def _close(self, batch: Batch) -> Batch:
        self._open = None
        batch.seq = self.next_seq
        self.next_seq += 1
        return batch
