"""The terminal side of the client: whether a stream is a terminal, a rich Console for it, and
the colours that mean severity everywhere (levels, status classes, error rates)."""
from __future__ import annotations

import sys
from typing import Literal, TextIO

from rich.console import Console

ColorChoice = Literal["auto", "always", "never"]

# RFC 5424 §6.2.1 severities, in the daemon's level names: the worse, the louder.
LEVEL_STYLES: dict[str, str] = {
    "EMERG": "bold white on red", "ALERT": "bold white on red", "CRIT": "bold red",
    "ERROR": "red", "WARNING": "yellow", "NOTICE": "cyan", "INFO": "green", "DEBUG": "dim",
}
STATUS_STYLES: dict[str, str] = {"1xx": "dim", "2xx": "green", "3xx": "cyan", "4xx": "yellow", "5xx": "red"}


def level_style(level: str | None) -> str:
    return LEVEL_STYLES.get((level or "").upper(), "")


def status_style(status_class: str) -> str:
    return STATUS_STYLES.get(status_class, "")


def error_rate_style(fraction: float) -> str:
    """Green when quiet, yellow from 1% of lines, red from 5%."""
    return "bold red" if fraction >= 0.05 else "yellow" if fraction >= 0.01 else "green"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def console_for(stream: TextIO | None = None, color: ColorChoice = "auto") -> Console:
    """A Console on `stream` (stdout by default); `always` keeps colour through a pipe.

    rich honours NO_COLOR itself; `never` also drops colour on a terminal.
    """
    stream = stream or sys.stdout
    return Console(
        file=stream,
        force_terminal=True if color == "always" else None,
        no_color=True if color == "never" else None,
        highlight=False,
        soft_wrap=False,
    )
