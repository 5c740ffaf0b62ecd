"""Readable text for the terminal: tables for STATS and TOP, one line per event or record."""
from __future__ import annotations

from typing import Any


def _table(rows: list[tuple[str, ...]], headers: tuple[str, ...] | None = None) -> str:
    if headers:
        rows = [headers, *rows]
    if not rows:
        return "(none)"
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [str(c).rjust(w) if _numeric(c) else str(c).ljust(w) for c, w in zip(row, widths)]
        lines.append("  ".join(cells).rstrip())
        if headers and n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) or (isinstance(value, str) and value.replace(".", "", 1).isdigit())


def _counts(title: str, counts: dict[str, int] | None, limit: int = 10) -> list[str]:
    if not counts:
        return []
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ["", title, _table([(k, v) for k, v in items])]


def stats_table(report: dict[str, Any]) -> str:
    rejected = report.get("rejected") or {}
    rows = [
        ("window", report.get("window", "all")),
        ("received", report.get("received", 0)),
        ("parsed", report.get("parsed", 0)),
        ("rejected", sum(rejected.values())),
        ("bytes", report.get("bytes", 0)),
    ]
    for key in ("errors", "error_rate", "lines_per_s", "first_ts", "last_ts", "uptime_s"):
        if report.get(key) is not None:
            rows.append((key, report[key]))
    conns = report.get("connections")
    if conns:
        rows.append(("connections", f"{conns.get('open', 0)} open / {conns.get('total', 0)} total"))
    out = [_table(rows)]
    out += _counts("rejected by reason", rejected)
    out += _counts("by format", report.get("by_format"))
    out += _counts("by level", report.get("by_level"))
    out += _counts("by service", report.get("by_service"))
    http = report.get("http") or {}
    out += _counts("HTTP by status class", http.get("by_class"))
    latency = http.get("latency_ms")
    if latency:
        out += ["", "HTTP latency (ms)", _table([tuple(latency.keys()), tuple(_fmt(v) for v in latency.values())])]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def top_table(answer: dict[str, Any]) -> str:
    items = answer.get("top") or []
    if not items:
        return f"top {answer.get('field')}: (none)"
    keys = [k for k in items[0].keys()]
    rows = [tuple(_fmt(item.get(k, "")) for k in keys) for item in items]
    return f"top {answer.get('field')} ({answer.get('window')})\n" + _table(rows, tuple(keys))


def send_summary(summary: dict[str, Any]) -> str:
    text = (
        f"sent {summary['lines']} lines ({summary['bytes']} bytes) from {summary['files']} file(s) "
        f"in {summary['seconds']} s ({summary['lines_per_s']} lines/s)"
    )
    server = summary.get("server")
    if server:
        text += (
            f"\nserver: received {server['received']}, parsed {server['parsed']}, "
            f"rejected {sum(server['rejected'].values())}"
        )
    for name, error in (summary.get("errors") or {}).items():
        text += f"\nerror: {name}: {error}"
    return text


def event_line(event: dict[str, Any]) -> str:
    figures = {k: v for k, v in event.items() if k not in ("type", "ts", "detector", "key")}
    extra = " ".join(f"{k}={v}" for k, v in figures.items() if not isinstance(v, (list, dict)))
    return f"{event.get('ts')}  {event.get('type', '?'):<14} {event.get('detector', '')}  key={event.get('key')}  {extra}"


def message_line(message: dict[str, Any]) -> str:
    kind = message.get("type")
    if kind == "record":
        return f"{message.get('ts')}  {message.get('level') or '-':<7} {message.get('service') or '-'}  {message.get('message')}"
    if kind == "stats":
        return f"received={message.get('received')} parsed={message.get('parsed')} lines/s={message.get('lines_per_s')}"
    if kind == "lagged":
        return f"# lagged: {message.get('dropped')} messages dropped"
    if kind and kind.startswith("job"):
        return " ".join(f"{k}={v}" for k, v in message.items())
    return event_line(message)
