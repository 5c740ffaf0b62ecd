"""Plain text for the terminal and pipes: tables for STATS and TOP, one line per event or record.

Every figure goes through `logtally.numbers`, so all reports share one number style.
"""
from __future__ import annotations

from typing import Any

from logtally.numbers import count, duration, iso_time, percent, rate, size


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
    if isinstance(value, (int, float)):
        return True
    if not isinstance(value, str):
        return False
    bare = value.lstrip("≥≈").replace("–", "").replace(",", "").removesuffix("%").replace(".", "", 1)
    return bare.isdigit()


def _counts(title: str, counts: dict[str, int] | None, limit: int = 10) -> list[str]:
    if not counts:
        return []
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ["", title, _table([(k, count(v)) for k, v in items])]


def stats_table(report: dict[str, Any]) -> str:
    rejected = report.get("rejected") or {}
    rows: list[tuple[str, ...]] = [
        ("window", str(report.get("window", "all"))),
        ("received", count(report.get("received", 0))),
        ("parsed", count(report.get("parsed", 0))),
        ("rejected", count(sum(rejected.values()))),
        ("bytes", size(report.get("bytes", 0))),
    ]
    if "nodes" in report:  # a cluster answer: which nodes it merges
        rows.insert(1, ("nodes", ",".join(report["nodes"]) or "-"))
    if report.get("errors") is not None:
        rows.append(("errors", count(report["errors"])))
    if report.get("error_rate") is not None:
        rows.append(("error rate", percent(report["error_rate"])))
    if report.get("lines_per_s") is not None:
        rows.append(("lines/s", rate(report["lines_per_s"])))
    for key, label in (("first_ts", "first event"), ("last_ts", "last event")):
        if report.get(key) is not None:
            rows.append((label, iso_time(report[key])))
    # Lines whose event time fell behind the windows (or ahead of the clock) are counted in the
    # totals but in no window; the label says so rather than a bare `late 450,451`.
    for key, label in (("late", "late (in no window)"), ("future", "future (in no window)")):
        if report.get(key):
            rows.append((label, count(report[key])))
    conns = report.get("connections")
    if conns:
        rows.append(("connections", f"{count(conns.get('open', 0))} open / {count(conns.get('total', 0))} total"))
    if report.get("uptime_s") is not None:
        rows.append(("uptime", duration(report["uptime_s"])))
    out = [_table(rows)]
    out += _counts("rejected by reason", rejected)
    out += _counts("notes (lines kept)", report.get("notes"))
    out += _counts("by format", report.get("by_format"))
    out += _counts("by level", report.get("by_level"))
    approximate = report.get("approximate") or {}
    for key, title in (("by_service", "by service"), ("by_host", "by host")):
        if key in approximate:  # past the exact-count budget: lower bounds from a sketch
            title += f" (approximate: lower bounds, each true count at most {count(approximate[key])} more)"
        out += _counts(title, report.get(key))
    out += _distinct(report)
    http = report.get("http") or {}
    if http.get("requests"):
        out += ["", "HTTP", _table([
            ("requests", count(http["requests"])),
            ("5xx rate", percent(http.get("rate_5xx") or 0.0)),
            ("bytes sent", size(http.get("bytes_sent", 0))),
        ])]
        out += _counts("HTTP by method", http.get("by_method"))
        out += _counts("HTTP by status class", http.get("by_class"))
        out += _counts("HTTP by status", http.get("by_status"))
        latency = http.get("latency_ms") or {}
        if latency.get("count"):
            keys = tuple(latency.keys())
            out += ["", "HTTP latency (ms)", _table([tuple(_fmt(latency[k]) for k in keys)], keys)]
    return "\n".join(out)


_DISTINCT_NAMES = {"ip": "client IPs", "user_agent": "user agents", "path": "paths", "host": "hosts",
                   "service": "services", "unique_visitors": "unique visitors"}


def _distinct(report: dict[str, Any]) -> list[str]:
    """Distinct counts (HLL): `≈estimate` and the range of two standard deviations."""
    distinct = report.get("distinct") or {}
    rows = [(_DISTINCT_NAMES.get(k, k), "≈" + count(d["estimate"]), f"{count(d['lower'])}–{count(d['upper'])}")
            for k, d in distinct.items() if d.get("upper")]
    if not rows:
        return []
    err = report.get("distinct_rel_err")
    title = "distinct (HLL" + (f", {percent(err)} relative standard error" if err is not None else "") + ")"
    return ["", title, _table(rows, ("", "≈count", "range"))]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return count(value)
    return f"{value:.2f}" if isinstance(value, float) else str(value)


_BOUNDS = ("lower", "upper", "requests_lower", "requests_upper", "approximate")


def top_table(answer: dict[str, Any]) -> str:
    """A TOP answer: an approximate row's count is the range `lower–upper` it lies in, and its
    share (of the lower bound) reads `≥`."""
    items = answer.get("top") or []
    if not items:
        return f"top {answer.get('field')}: (none)"
    head = f"top {answer.get('field')} ({answer.get('window')})"
    if any(item.get("approximate") for item in items):
        head += "\napproximate (over the exact-count budget): each true count lies in the range shown"
    rows = []
    for item in items:
        row: dict[str, Any] = {"value": item.get("value"), "count": _bounded(item, "count", "lower", "upper")}
        share = item.get("share")
        row["share"] = ("≥" + percent(share)) if item.get("approximate") and share is not None else share
        if "requests" in item or "requests_lower" in item:
            row["requests"] = _bounded(item, "requests", "requests_lower", "requests_upper")
        row.update((k, v) for k, v in item.items() if k not in row and k not in _BOUNDS)
        rows.append(row)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return head + "\n" + _table([tuple(_cell(k, row.get(k)) for k in keys) for row in rows], tuple(keys))


def _bounded(item: dict[str, Any], key: str, lower: str, upper: str) -> Any:
    if key in item:
        return item[key]
    return f"{count(item.get(lower, 0))}–{count(item.get(upper, 0))}"


def items_table(items: list[dict[str, Any]]) -> str:
    """A list of like objects as a table, one column per key of the first."""
    if not items:
        return "(none)"
    keys = tuple(items[0].keys())
    return _table([tuple(_cell(k, item.get(k)) for k in keys) for item in items], keys)


def _cell(key: str, value: Any) -> str:
    return percent(value) if key == "share" and isinstance(value, (int, float)) else _fmt(value)


def send_summary(summary: dict[str, Any]) -> str:
    per_s = summary["lines_per_s"]
    text = (
        f"sent {count(summary['lines'])} lines ({size(summary['bytes'])}) from {summary['files']} file(s) "
        f"in {summary['seconds']:.2f} s ({'-' if per_s is None else count(per_s)} lines/s)"
    )
    server = summary.get("server")
    if server:
        rejected = server["rejected"]
        reasons = ", ".join(f"{k} {count(v)}" for k, v in sorted(rejected.items()))
        text += (
            f"\nserver: received {count(server['received'])}, parsed {count(server['parsed'])}, "
            f"rejected {count(sum(rejected.values()))}" + (f" ({reasons})" if reasons else "")
        )
    for name, error in (summary.get("errors") or {}).items():
        text += f"\nerror: {name}: {error}"
    return text


def senders_table(answer: dict[str, Any]) -> str:
    """A SENDERS answer: one row per sender address, most recently seen first."""
    rows = []
    for row in answer.get("senders") or []:
        hosts = ",".join(row.get("hostnames") or []) + ("+" if row.get("hostnames_truncated") else "")
        rejected = row.get("rejected") or {}
        rows.append((
            row.get("peer", "?"), hosts or "-", iso_time(row["first_seen"]), iso_time(row["last_seen"]),
            count(row.get("lines", 0)), size(row.get("bytes", 0)),
            f"{rate(row.get('rate_per_s', 0.0))} / {rate(row.get('baseline_per_s', 0.0))}",
            ",".join(row.get("framing") or []) or "-",
            " ".join(f"{k}={count(v)}" for k, v in rejected.items()) or "-",
            percent(row.get("reject_ratio", 0.0)), count(row.get("oversize", 0)),
            ",".join(row.get("tls_client") or []) or "-",
        ))
    head = f"senders: {count(answer.get('tracked', 0))} tracked, {count(answer.get('evicted', 0))} evicted"
    headers = ("peer", "hostnames", "first seen", "last seen", "lines", "bytes", "rate/s / baseline",
               "framing", "rejected", "reject %", "oversize", "tls client")
    return head + "\n" + _table(rows, headers) if rows else head


def cluster_table(answer: dict[str, Any]) -> str:
    """A CLUSTER answer: one row per node known to the fleet view."""
    rows = [(r["node"], "up" if r["up"] else "DOWN", str(r["last_second"] if r["last_second"] is not None else "-"),
             "-" if r["lag_s"] is None else f"{r['lag_s']}s", f"{r['silent_s']:.1f}s", count(r["lines"]),
             count(r.get("restarts", 0))) for r in answer.get("nodes") or []]
    head = f"nodes: {len(rows)}, watermark {answer.get('watermark')}, down after {answer.get('down_after_s')}s silent"
    return head + "\n" + _table(rows, ("node", "state", "last second", "lag", "silent", "lines", "restarts")) if rows else head


def event_line(event: dict[str, Any]) -> str:
    """`2025-02-01T10:00:05Z  pattern  pattern  key=203.0.113.9  pattern=ssh_brute_force ...`"""
    figures = {k: v for k, v in event.items() if k not in ("type", "ts", "detector", "key")}
    extra = " ".join(f"{k}={_fmt(v)}" for k, v in figures.items() if not isinstance(v, (list, dict)))
    ts = event.get("ts")
    when = iso_time(ts) if isinstance(ts, (int, float)) else str(ts)
    return f"{when}  {event.get('type', '?'):<14} {event.get('detector', '')}  key={event.get('key')}  {extra}".rstrip()


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


def alerts_table(answer: dict[str, Any]) -> str:
    """An ALERTS answer: the alerts firing now, then one row of delivery counts per route."""
    alerts = answer.get("alerts") or []
    firing = [(a.get("route", ""), a.get("group_key", ""), iso_time(a.get("starts_at", 0)),
               count(a.get("events", 0))) for a in alerts]
    routes = answer.get("routes") or {}
    rows = [(name, r.get("kind", ""), r.get("target", ""), count(r.get("sent", 0)), count(r.get("retried", 0)),
             count(r.get("failed", 0)), count(r.get("dropped", 0)), count(r.get("queued", 0)),
             count(r.get("active", 0))) for name, r in sorted(routes.items())]
    return "\n".join([
        f"firing: {len(alerts)}",
        _table(firing, ("route", "group", "since", "events")) if firing else "(none)",
        "",
        "routes",
        _table(rows, ("route", "kind", "target", "sent", "retried", "failed", "dropped", "queued", "active"))
        if rows else "(no [[alerts]] routes configured)",
    ])


_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One block character per value, scaled from the row's minimum to its maximum."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    return "".join(_BLOCKS[round((v - lo) / span * (len(_BLOCKS) - 1)) if span else 0] for v in values)


def history_chart(answer: dict[str, Any], width: int = 60) -> str:
    """A HISTORY answer: per series one sparkline of its last `width` points, with min, max and last."""
    step = answer.get("step", 60)
    lines = [f"step {step} s, {iso_time(answer.get('since', 0))} .. {iso_time(answer.get('until', 0))}"]
    series = answer.get("series") or {}
    name_width = max((len(n) for n in series), default=0)
    for name, points in series.items():
        values = [v for _, v in points][-width:]
        if not values:
            lines.append(f"{name:<{name_width}}  (no data)")
            continue
        mark = " ~" if name in (answer.get("approximate") or {}) else ""
        lines.append(f"{name:<{name_width}}  {sparkline(values)}  min {_fmt(min(values))} "
                     f"max {_fmt(max(values))} last {_fmt(values[-1])}{mark}")
    if any(n in (answer.get("approximate") or {}) for n in series):
        lines.append("~ approximate: " + "; ".join(f"{n}: {why}" for n, why in answer["approximate"].items()
                                                     if n in series))
    return "\n".join(lines)
