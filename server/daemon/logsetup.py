"""structlog configuration for the daemon's own logs, chosen once at start.

JSON lines on stdout when it is not a terminal (journald, files, pipes), a console renderer on
a terminal; ISO-8601 UTC timestamps; the level from `[log]`. Records from the standard
`logging` module (asyncio, libraries) go through the same renderer.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TextIO

import msgspec
import structlog

LEVEL_NUMBERS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                 "error": logging.ERROR, "critical": logging.CRITICAL}
# sd-daemon(3) priorities: journald reads a "<N>" prefix on a stdout line as its priority.
JOURNAL_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3, "exception": 3, "critical": 2}


class LogConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`[log]` in config.toml."""

    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["auto", "json", "console"] = "auto"  # auto: console on a TTY, JSON otherwise
    # Per-line and per-connection events are rate limited (`logtallyd.ratelog`), so a garbage
    # flood or a connect storm cannot flood the journal; what is dropped is still counted.
    rate_interval_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0
    rejected_per_interval: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 5  # `line_rejected` per reason, `alert_try_failed` per route
    connection_events_per_interval: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20  # per kind


def use_json(config: LogConfig, stream: TextIO) -> bool:
    if config.format != "auto":
        return config.format == "json"
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


def connected_to_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """systemd.exec(5) `$JOURNAL_STREAM` is `dev:inode` of the stream journald gave us; compare it."""
    value = environ.get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False
    return value == f"{st.st_dev}:{st.st_ino}"


class JournalPrefixed:
    """Wrap the final renderer: `<6>{...}` so `journalctl -p warning` filters by our levels."""

    def __init__(self, renderer: Any) -> None:
        self.renderer = renderer

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> str:
        level = str(event_dict.get("level", method_name)).lower()
        return f"<{JOURNAL_PRIORITY.get(level, 6)}>{self.renderer(logger, method_name, event_dict)}"


class PipeSafe:
    """The log stream, made safe for a reader that went away (`logtallyd ... | head -1`): once
    stdout is a broken pipe the daemon's own logs are dropped, so a log call (in a signal
    handler, say) can never raise and stop the daemon from running or from stopping cleanly."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.broken = True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def console_renderer(colors: bool) -> Any:
    """structlog's console renderer, with rich's tracebacks where rich is installed. The daemon
    imported structlog with rich hidden (`logtallyd.daemon`); structlog picks its traceback
    formatter when `structlog.dev` runs, so it runs again now that a terminal wants it."""
    if structlog.dev.rich is None and importlib.util.find_spec("rich") is not None:
        importlib.reload(structlog.dev)
    return structlog.dev.ConsoleRenderer(colors=colors)


def configure_logging(
    config: LogConfig | None = None, stream: TextIO | None = None, environ: Mapping[str, str] = os.environ
) -> bool:
    """Configure structlog and the stdlib root logger to write to `stream` (stdout); True if JSON."""
    config = LogConfig() if config is None else config
    stream = sys.stdout if stream is None else stream
    as_json = use_json(config, stream)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    colors = stream.isatty()
    stream = stream if isinstance(stream, PipeSafe) else PipeSafe(stream)  # type: ignore[assignment]
    renderer: Any
    if as_json:
        shared.append(structlog.processors.format_exc_info)  # tracebacks as one string field
        renderer = structlog.processors.JSONRenderer()
        if connected_to_journal(stream, environ):
            renderer = JournalPrefixed(renderer)
    else:
        renderer = console_renderer(colors)
    level = LEVEL_NUMBERS[config.level]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.set_name("logtally")
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "logtally"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return as_json
