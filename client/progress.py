"""Progress of `send` on a terminal: a rich bar on stderr with bytes, lines/s and ETA.

Through a pipe nothing is drawn; the summary that follows is the whole output.
"""
from __future__ import annotations

import os
from types import TracebackType

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TaskProgressColumn,
                           TextColumn, TimeRemainingColumn)
from rich.text import Text

from logtally.numbers import count

__all__ = ["SendProgress", "total_bytes"]


class LinesPerSecond(ProgressColumn):
    """Lines sent per second of the task so far."""

    def render(self, task: Task) -> Text:
        lines = task.fields.get("lines", 0)
        elapsed = task.elapsed or 0.0
        per_s = "-" if elapsed <= 0 else count(round(lines / elapsed))
        return Text(f"{per_s} lines/s", style="cyan")


def total_bytes(paths: list[str]) -> int | None:
    """Size on disk of all the files (compressed size for .gz); unknown when stdin is one of them."""
    if "-" in paths:
        return None
    total = 0
    for path in paths:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass  # send reports the missing file itself
    return total


class SendProgress:
    """A context manager whose `advance(nbytes, lines)` moves the bar; `send_one` calls it per chunk."""

    def __init__(self, console: Console, total: int | None) -> None:
        self._progress = Progress(
            TextColumn("[bold]send"), BarColumn(), TaskProgressColumn(),
            DownloadColumn(binary_units=True), LinesPerSecond(), TextColumn("eta"), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self._task = self._progress.add_task("send", total=total, lines=0)
        self._lines = 0

    def advance(self, nbytes: int, lines: int) -> None:
        self._lines += lines
        self._progress.update(self._task, advance=nbytes, lines=self._lines)

    def __enter__(self) -> SendProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.refresh()
        self._progress.stop()
