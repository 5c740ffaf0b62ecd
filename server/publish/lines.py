"""Cuts the control stream into command lines, within `[control] max_command_bytes`.

Sans-I/O: bytes in, lines (or a `CommandError` for a line too long) out, in the order they came.
"""
from __future__ import annotations

from logtallyd.publish.protocol import CommandError

__all__ = ["LineReader"]


class LineReader:
    """Lines end at LF; surrounding whitespace and empty lines are dropped. A line longer than
    `limit` bytes is refused once, and skipped up to its newline so that its tail is not read
    as a command of its own."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._skipping = False  # inside a refused line, until its newline

    def feed(self, data: bytes) -> list[str | CommandError]:
        self._buffer += data
        lines: list[str | CommandError] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping:
                self._skipping = False
            elif len(raw) > self.limit:
                lines.append(self._too_long())
            elif raw := raw.strip():
                lines.append(raw.decode("utf-8", "replace"))
        if len(self._buffer) > self.limit:
            self._buffer.clear()
            if not self._skipping:
                self._skipping = True
                lines.append(self._too_long())
        return lines

    def _too_long(self) -> CommandError:
        return CommandError(f"command longer than {self.limit} bytes")
