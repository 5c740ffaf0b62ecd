"""The archive read back as a write-ahead log: the lines after a snapshot's position, for the daemon
to count again before it listens. `plan` is pure (names and sizes in, files and offsets out);
`read_frames` does the blocking reads, so run each step with `asyncio.to_thread`.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator, Literal

import msgspec
import structlog

from logtallyd.persist.archive import CURRENT, ArchivePosition, closed_segments, generation_of

log = structlog.get_logger()

# Why some archived lines after the position cannot be replayed (they are then not counted).
Gap = Literal["segment_deleted", "archive_reset", "archive_shorter", "other_directory", "segment_unreadable"]


class Plan(msgspec.Struct, frozen=True):
    """What to read: (file, offset) in archive order, and a gap if the position's file is gone."""

    files: list[tuple[str, int]]
    gap: Gap | None = None


def plan(position: ArchivePosition, directory: str, segments: list[tuple[str, int]],
         current: tuple[int, int]) -> Plan:
    """Files to read from `position` to the end. `segments` are closed (name, generation) oldest
    first; `current` is (generation, size) of `current.log`. Pure."""
    if position.directory != directory:
        return Plan([], "other_directory")
    generation, size = current
    if position.generation > generation or (position.generation == generation and position.offset > size):
        # Fewer lines than the snapshot counted: a power loss took unsynced lines (fsync =
        # "never"), or the archive was emptied by hand. Nothing here is uncounted.
        return Plan([], "archive_reset" if position.generation > generation else "archive_shorter")
    files = [(name, position.offset if gen == position.generation else 0)
             for name, gen in segments if gen >= position.generation]
    files.append((CURRENT, position.offset if generation == position.generation else 0))
    found = generation == position.generation or any(gen == position.generation for _, gen in segments)
    return Plan(files, None if found else "segment_deleted")


def plan_directory(position: ArchivePosition, directory: Path, current: tuple[int, int]) -> Plan:
    segments = [(p.name, generation_of(p)) for p in closed_segments(directory)]
    return plan(position, str(directory), segments, current)


def read_frames(directory: Path, files: list[tuple[str, int]], end: int, chunk_lines: int) -> Iterator[list[bytes]]:
    """The archived frames (lines without their newline) of `files`, in chunks of `chunk_lines`;
    `current.log` is read only up to `end`, its size when the archive was opened."""
    chunk: list[bytes] = []
    for name, offset in files:
        path = directory / name
        opener = gzip.open if name.endswith(".gz") else open
        try:
            with opener(path, "rb") as f:
                f.seek(offset)  # gzip seeks forward by decompressing: the offset is uncompressed bytes
                left = end - offset if name == CURRENT else -1
                for line in f:
                    if left >= 0:
                        if left == 0:
                            break
                        line = line[:left]
                        left -= len(line)
                    chunk.append(line[:-1] if line.endswith(b"\n") else line)
                    if len(chunk) >= chunk_lines:
                        yield chunk
                        chunk = []
        except (OSError, EOFError, zlib.error) as exc:
            # A damaged or unreadable segment must not stop the daemon from starting (a restart
            # loop would count the lines before it again on every try): what it held up to the
            # damage is counted, the rest is a logged gap, and the replay goes on.
            log.warning("archive_replay_gap", reason="segment_unreadable", file=name, error=str(exc))
    if chunk:
        yield chunk
