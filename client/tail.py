"""`tail` on a terminal: one record per line in fixed columns (time, level, service, host,
message), the level coloured by severity and the message cut at the terminal's width."""
from __future__ import annotations

from typing import Any

from rich.text import Text

from logtally.terminal import level_style

__all__ = ["COLUMNS", "record_row"]

# (field, width): a record's time is ISO 8601 UTC, 20 characters; levels are at most 7 (WARNING).
COLUMNS: tuple[tuple[str, int], ...] = (("ts", 20), ("level", 7), ("service", 10), ("host", 10))


def record_row(record: dict[str, Any], width: int) -> Text:
    row = Text(no_wrap=True, overflow="ellipsis")
    for name, size in COLUMNS:
        value = record.get(name)
        cell = Text("-" if value in (None, "") else str(value),
                    style=level_style(value) if name == "level" else ("dim" if name == "ts" else ""))
        cell.truncate(size, overflow="ellipsis", pad=True)
        row.append_text(cell)
        row.append(" ")
    room = max(1, width - len(row))
    message = Text(str(record.get("message") or "").replace("\n", " "))
    message.truncate(room, overflow="ellipsis")
    row.append_text(message)
    return row
