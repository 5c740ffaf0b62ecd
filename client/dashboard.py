"""The `watch` screen as a pure function: a snapshot of the daemon's answers and a terminal size in,
rich Text lines out (the key figures first, then as many sections as the height allows).

No I/O and no clock here, so a layout is tested with plain values; `logtally.watch` polls and draws.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.text import Text

from logtally import PROG
from logtally.numbers import count, duration, iso_time, percent, rate, size
from logtally.terminal import LEVEL_STYLES, error_rate_style, level_style, status_style

__all__ = ["Section", "Snapshot", "screen", "sections", "sparkline"]

SECTION_ROWS = 5  # rows per section; a section is its title plus at most this many rows
COLUMN_WIDTH = 40  # a terminal holds width // COLUMN_WIDTH sections side by side
_BARS = "▁▂▃▄▅▆▇█"


@dataclass
class Snapshot:
    """What one refresh learned: STATS of the window and of all time, recent events, top lists."""

    address: str
    window: str
    report: dict[str, Any]
    totals: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    tops: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rates: list[float] = field(default_factory=list)  # ingest lines/s per refresh, oldest first
    now: float = 0.0  # Unix time of the refresh


@dataclass
class Section:
    title: str
    rows: list[tuple[Text, str]]  # label (styled) and value


def sparkline(values: list[float], width: int) -> str:
    """The last `width` values as block characters, scaled to their maximum."""
    tail = values[-width:] if width > 0 else []
    top = max(tail, default=0.0)
    if top <= 0:
        return _BARS[0] * len(tail)
    return "".join(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1) + 0.5))] for v in tail)


def anomalies_in_window(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Events whose event time lies in the shown window (all kept events for the `all` window)."""
    report = snapshot.report
    span, anchor = report.get("window_s"), report.get("anchor")
    if not span or anchor is None:
        return snapshot.events
    start = anchor - span
    return [e for e in snapshot.events if isinstance(e.get("ts"), (int, float)) and e["ts"] > start]


def key_lines(snapshot: Snapshot, width: int) -> list[Text]:
    """The first lines of the screen: title, then the figures an operator looks at first."""
    report, totals = snapshot.report, snapshot.totals
    title = Text(f"{PROG} {snapshot.address}  window {snapshot.window}", style="bold reverse")
    if totals.get("uptime_s") is not None:
        title.append(f"  up {duration(totals['uptime_s'])}")
    title.append(f"  {iso_time(snapshot.now)}")
    hint = "  q quits"
    if len(title) + len(hint) <= width:
        title.append(hint)
    title.pad_right(max(0, width - len(title)))

    per_s = f"{rate(snapshot.rates[-1])}" if snapshot.rates else "-"
    spark_width = max(8, min(30, width - 64))
    rates = Text.assemble(("lines/s ", "bold"), (per_s, "bold cyan"))
    if snapshot.rates:
        rates.append_text(Text.assemble("  ", (sparkline(snapshot.rates, spark_width), "cyan")))
    rates.append_text(_figure("received", count(report.get("received", 0))))
    rates.append_text(_figure("bytes", size(report.get("bytes", 0))))

    errors, error_rate = report.get("errors") or 0, report.get("error_rate") or 0.0
    style = error_rate_style(error_rate)
    health = Text.assemble(("errors ", "bold"), (count(errors), style if errors else "green"))
    health.append_text(_figure("error rate", percent(error_rate), style))
    p95 = ((report.get("http") or {}).get("latency_ms") or {}).get("p95")
    health.append_text(_figure("p95", "-" if p95 is None else f"{rate(p95)} ms"))
    open_conns = (totals.get("connections") or report.get("connections") or {}).get("open", 0)
    health.append_text(_figure("connections", count(open_conns)))
    anomalies = len(anomalies_in_window(snapshot))
    health.append_text(_figure("anomalies", count(anomalies), "bold magenta" if anomalies else "green"))
    return [title, rates, health, Text("─" * width, style="dim")]


def _figure(label: str, value: str, style: str = "") -> Text:
    return Text.assemble("  ", (label + " ", "bold"), (value, style))


def _counted(title: str, counts: dict[str, int] | None, style_of: Any = None, order: list[str] | None = None) -> Section | None:
    if not counts:
        return None
    if order is not None:
        keys = sorted(counts, key=lambda k: (order.index(k) if k in order else len(order), k))
    else:
        keys = sorted(counts, key=lambda k: (-counts[k], k))
    return Section(title, [(Text(k, style=style_of(k) if style_of else ""), count(counts[k])) for k in keys])


def _top(title: str, items: list[dict[str, Any]] | None) -> Section | None:
    if not items:
        return None
    if any(i.get("approximate") for i in items):
        title += " (≈: true count in range)"
    return Section(title, [(Text(str(i.get("value"))), _top_count(i)) for i in items])


def _top_count(item: dict[str, Any]) -> str:
    """Exact, or the range an approximate count lies in (a sketch's guaranteed bounds)."""
    if "count" in item:
        return count(item["count"])
    return f"{count(item.get('lower', 0))}–{count(item.get('upper', 0))}"


def sections(snapshot: Snapshot) -> list[Section]:
    """Every section with something to show, most useful first."""
    report = snapshot.report
    http = report.get("http") or {}
    latency = http.get("latency_ms") or {}
    found: list[Section | None] = [
        _counted("levels", report.get("by_level"), level_style, list(LEVEL_STYLES)),
        _counted("status classes", http.get("by_class"), status_style, sorted(http.get("by_class") or {})),
    ]
    if latency.get("count"):
        found.append(Section("latency (ms)", [
            (Text(k), rate(latency[k])) for k in ("p50", "p95", "p99", "max") if latency.get(k) is not None
        ]))
    recent = anomalies_in_window(snapshot)[-SECTION_ROWS:][::-1]
    if recent:
        found.append(Section("anomalies (newest first)", [
            (Text(f"{e.get('type', '?')} {e.get('key') or ''}".rstrip(), style="magenta"),
             iso_time(e["ts"])[11:] if isinstance(e.get("ts"), (int, float)) else "-")
            for e in recent
        ]))
    found += [
        _counted("services", report.get("by_service")),
        _top("top paths", snapshot.tops.get("path")),
        _top("top errors", snapshot.tops.get("error")),
        _top("top client IPs", snapshot.tops.get("ip")),
        _counted("hosts", report.get("by_host")),
        _counted("formats", report.get("by_format")),
        _counted("rejected", report.get("rejected"), lambda _: "red"),
    ]
    return [s for s in found if s is not None]


def _section_lines(section: Section, width: int, rows: int) -> list[Text]:
    lines = [Text(section.title, style="bold underline")]
    for label, value in section.rows[:rows]:
        room = max(1, width - len(value) - 1)
        line = Text()  # a fresh Text: the label's style stays on the label
        line.append_text(label)
        line.truncate(room, overflow="ellipsis", pad=True)
        line.append(" " + value)
        lines.append(line)
    return lines


def screen(snapshot: Snapshot, width: int, height: int) -> Group:
    """The whole screen: key lines, then rows of sections side by side while they fit."""
    lines = key_lines(snapshot, width)
    columns = max(1, width // COLUMN_WIDTH)
    cell = width // columns
    pending = sections(snapshot)
    while pending:
        room = height - len(lines) - (1 if len(lines) > 4 else 0)  # a blank line between rows
        if room < 2:  # a title and one row at least
            break
        row, pending = pending[:columns], pending[columns:]
        rows = min(SECTION_ROWS, room - 1)
        cells = [_section_lines(s, cell - 2, rows) for s in row]
        if len(lines) > 4:
            lines.append(Text(""))
        for i in range(max(len(c) for c in cells)):
            line = Text()
            for c in cells:
                part = Text()
                if i < len(c):
                    part.append_text(c[i])
                part.truncate(cell - 2, pad=True)
                line.append_text(part)
                line.append("  ")
            line.rstrip()
            lines.append(line)
    for line in lines:
        line.no_wrap = True
        line.overflow = "crop"
    return Group(*lines[:height])
