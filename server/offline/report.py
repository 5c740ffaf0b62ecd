"""The text and HTML renderings of an `analyze` result: the STATS report, its top-N tables, the
web panels (`logtallyd.stats.webreport.summarise`) and the anomaly events.

Plain values in, one string out. One number style: counts with thousands separators, shares
as `4.8%`, bytes in IEC units (`67.1 MiB`), times in ISO 8601 UTC. A count from a sketch is shown
as its guaranteed range `340–3,643` (true count within), a share of one as `≥0.1%`.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

from logtallyd.publish.dashboard import report_page

__all__ = ["AnalyzeResult", "format_html", "format_text", "count", "percent", "size", "iso_time", "row_count",
           "row_share"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_BAR_WIDTH = 30
_BLOCKS = " ▏▎▍▌▋▊▉█"  # eighths of a character cell, for bars finer than one cell


def count(n: int | float | None) -> str:
    if n is None:
        return "-"
    return f"{round(n):,}"


def percent(fraction: float | None) -> str:
    """0.0483 -> `4.8%`."""
    return "-" if fraction is None else f"{fraction * 100:.1f}%"


def row_count(row: dict[str, Any], key: str = "count") -> str:
    """A TOP row's count: exact, or the range `lower–upper` the true count lies in."""
    if key in row:
        return count(row[key])
    prefix = "" if key == "count" else f"{key}_"
    return f"{count(row[prefix + 'lower'])}–{count(row[prefix + 'upper'])}"


def row_share(row: dict[str, Any]) -> str:
    """A TOP row's share; of the lower bound (so at least that) when the row is approximate."""
    return ("≥" if row.get("approximate") and row.get("share") is not None else "") + percent(row.get("share"))


_APPROXIMATE_NOTE = "(a–b: over the exact-count budget, from a sketch: the true count lies in a–b)"


def size(n: int | float | None) -> str:
    """Bytes in IEC binary units (IEC 80000-13): `512 B`, `67.1 MiB`."""
    if n is None:
        return "-"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def iso_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):
        return str(ts)


def millis(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


def bar(value: float, most: float, width: int = _BAR_WIDTH) -> str:
    """A horizontal bar of block characters, `width` cells for `most`."""
    if most <= 0 or value <= 0:
        return ""
    eighths = max(1, round(8 * width * value / most))
    full, part = divmod(eighths, 8)
    return "█" * full + (_BLOCKS[part] if part else "")


class AnalyzeResult:
    """What `analyze` found, as plain values: the STATS `all` report, the top-N tables, the web
    summary (None when no access lines), the anomaly events (None unless asked for), the
    largest window, which `late` refers to, and the per-hour and per-day trends (HTML only)."""

    def __init__(self, report: dict[str, Any], tops: dict[str, list[dict[str, Any]]],
                 web: dict[str, Any] | None, events: list[dict[str, Any]] | None, horizon_s: int,
                 max_future_s: int, paths: list[str], trends: dict[str, Any] | None = None) -> None:
        self.report = report
        self.tops = tops
        self.web = web if web and web["requests"] else None
        self.events = events
        self.horizon_s = horizon_s
        self.max_future_s = max_future_s
        self.paths = paths
        self.trends = trends  # per hour and per day (`logtallyd.offline.trends`), for the HTML page


# -- text ------------------------------------------------------------------------------------


def _table(headers: tuple[str, ...], rows: Iterable[tuple[str, ...]], indent: str = "  ") -> list[str]:
    """Columns: the first left-aligned, the others right-aligned."""
    rows = [headers, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    out = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _pairs(title: str, rows: dict[str, str]) -> list[str]:
    if not rows:
        return []
    width = max(map(len, rows))
    return [f"{title}:"] + [f"  {k.ljust(width)}  {v}".rstrip() for k, v in rows.items()]


def _counts(title: str, counts: dict[str, int]) -> list[str]:
    total = sum(counts.values())
    if not counts:
        return []
    return [f"{title}:"] + _table(("", "count", "share"),
                                  ((str(k), count(v), percent(v / total if total else None)) for k, v in counts.items()))


def _duration(seconds: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


def _lines_section(result: AnalyzeResult) -> list[str]:
    r = result.report
    window = _duration(result.horizon_s)
    out = _pairs("lines", {
        "received": count(r["received"]), "parsed": count(r["parsed"]),
        "rejected": count(sum(r["rejected"].values())), "input": size(r["bytes"]),
        "errors": count(r["errors"]), "error rate": percent(r["error_rate"]),
        "first event": iso_time(r["first_ts"]), "last event": iso_time(r["last_ts"]),
        "lines/s": f"{r['lines_per_s']:,.1f} (per second of event time)",
        "late": f"{count(r['late'])} (more than {window} older than the newest line read before them:"
                " in every total here, outside the rolling windows)",
        "future": f"{count(r['future'])} (more than {result.max_future_s}s ahead of this machine's clock:"
                  " in the totals only)",
    })
    return out


def _http_section(r: dict[str, Any]) -> list[str]:
    http = r["http"]
    if not http["requests"]:
        return []
    lat = http["latency_ms"]
    out = _pairs("http", {"requests": count(http["requests"]), "5xx rate": percent(http["rate_5xx"]),
                          "bytes sent": size(http["bytes_sent"])})
    out += _counts("by method", http["by_method"])
    out += _counts("by status class", http["by_class"])
    if lat.get("count"):
        out += _pairs("latency ms", {k: count(v) if k == "count" else millis(v) for k, v in lat.items()
                                     if not isinstance(v, dict)})
    return out


def _top_section(field: str, rows: list[dict[str, Any]]) -> list[str]:
    titles = {"ip": "client IPs", "user_agent": "user agents", "path": "paths", "service": "services",
              "host": "hosts", "status": "status codes", "error": "error templates",
              "suspicious_ip": "suspicious IPs (4xx/5xx answers)"}
    head = f"top {field}: {titles.get(field, field)}"
    if any(row.get("approximate") for row in rows):
        head += " " + _APPROXIMATE_NOTE
    if field == "suspicious_ip":
        out = [head]
        width = max(len(row["value"]) for row in rows)
        for row in rows:
            line = f"  {row['value'].ljust(width)}  {row_count(row)} error responses"
            if row.get("requests") or row.get("requests_upper"):
                line += f" of {row_count(row, 'requests')} requests"
                if row.get("share") is not None:
                    line += f" ({percent(row['share'])})"
            out.append(line)
        return out
    if field == "error":
        out = [head]
        width = max(9, *(len(row_count(row)) for row in rows))
        for row in rows:
            out.append(f"  {row_count(row):>{width}}  {row_share(row):>6}  {row['value']}")
            if row.get("example") and row["example"] != row["value"]:
                out.append(f"  {'':>{width}}  {'':>6}  e.g. {row['example']}")
        return out
    return [head] + _table(("", "count", "share"),
                           ((str(row["value"]), row_count(row), row_share(row)) for row in rows))


def _panel_rows(panel: dict[str, Any], total_hits: int) -> list[tuple[str, ...]]:
    rows = [(str(row["key"]), count(row["hits"]), percent(row["hits"] / total_hits if total_hits else None),
             count(row["visitors"]), size(row["bytes"])) for row in panel["rows"]]
    other = panel["other"]
    if other is not None:
        rows.append((f"other (≈{count(other['keys'])} keys)", count(other["hits"]),
                     percent(other["hits"] / total_hits if total_hits else None),
                     count(other["visitors"]), size(other["bytes"])))
    return rows


_HEAD = ("", "hits", "share", "≈visitors", "bandwidth")
# The first column's heading per panel.
_KEY_NAMES = {
    "days": "date", "hours": "hour", "requests": "URL", "static": "URL", "not_found": "URL", "hosts": "IP",
    "os": "OS family", "browsers": "browser family", "referrers": "referrer", "referring_sites": "site",
    "status": "status", "endpoints": "endpoint",
}


def _web_section(web: dict[str, Any]) -> list[str]:
    panels = web["panels"]
    total = web["requests"]
    err = percent(web["visitors_rel_err"])
    out = [f"web report (GoAccess's panels; ≈ marks a count from an HLL sketch, lg_k={web['visitors_lg_k']},"
           f" relative error ≈{err})"]
    out += _pairs("overview", {
        "requests": count(total),
        "unique visitors": f"≈{count(web['visitors'])} (distinct IP, day and user agent"
                           + ("" if web["visitors_4xx"] else "; 4xx answers left out, as GoAccess does") + ")",
        "requested files": count(panels["requests"]["keys"]),
        "static files": count(panels["static"]["keys"]),
        "not found URLs": count(panels["not_found"]["keys"]),
        "referrers": count(panels["referrers"]["keys"]),
        "bandwidth": size(web["bytes"]),
    })
    for name in ("days", "hours"):
        panel = panels[name]
        if not panel["rows"]:
            continue
        most = max(row["hits"] for row in panel["rows"])
        out.append(f"{panel['title']}:")
        rows = [(row["key"], bar(row["hits"], most), count(row["hits"]), count(row["visitors"]), size(row["bytes"]))
                for row in panel["rows"]]
        if panel["other"] is not None:
            o = panel["other"]
            rows.append((f"other (≈{count(o['keys'])} keys)", "", count(o["hits"]), count(o["visitors"]), size(o["bytes"])))
        widths = [max(len(r[i]) for r in rows + [(_KEY_NAMES[name], "", "hits", "≈visitors", "bandwidth")])
                  for i in range(5)]
        out.append(f"  {_KEY_NAMES[name]:<{widths[0]}}  {'':<{_BAR_WIDTH}}  {'hits':>{widths[2]}}  {'≈visitors':>{widths[3]}}"
                   f"  {'bandwidth':>{widths[4]}}")
        for key, b, hits, vis, nbytes in rows:
            out.append(f"  {key:<{widths[0]}}  {b:<{_BAR_WIDTH}}  {hits:>{widths[2]}}  {vis:>{widths[3]}}"
                       f"  {nbytes:>{widths[4]}}")
    for name in ("requests", "static", "not_found", "hosts", "os", "browsers", "referrers", "referring_sites"):
        panel = panels[name]
        if not panel["rows"]:
            continue
        shown = len(panel["rows"])
        note = f" (top {shown} of {count(panel['keys'])})" if panel["keys"] > shown else ""
        out.append(f"{panel['title']}{note}:")
        out += _table((_KEY_NAMES[name], *_HEAD[1:]), _panel_rows(panel, total))
    if web["status_classes"]:
        out.append(f"{panels['status']['title']}:")
        rows: list[tuple[str, ...]] = []
        for group in web["status_classes"]:
            rows.append((group["class"], count(group["hits"]), percent(group["hits"] / total),
                         count(group["visitors"]), size(group["bytes"])))
            rows += [("  " + code["key"], count(code["hits"]), percent(code["hits"] / total),
                      count(code["visitors"]), size(code["bytes"])) for code in group["codes"]]
        out += _table((_KEY_NAMES["status"], *_HEAD[1:]), rows)
    endpoints = panels["endpoints"]
    if endpoints["rows"]:
        out.append(f"{endpoints['title']}, top {len(endpoints['rows'])} by hits:")
        out += _table(("endpoint", "hits", "p50", "p95", "p99", "max"), (
            (row["key"], count(row["hits"]), millis(row["p50"]), millis(row["p95"]), millis(row["p99"]),
             millis(row["max"])) for row in endpoints["rows"]))
    return out


def event_text(event: dict[str, Any]) -> str:
    """`2025-02-01T10:00:05Z  error_spike  spike  key=*  count=120 window_s=60 threshold=100`"""
    skip = {"type", "ts", "detector", "key", "timestamps", "lines", "top_templates"}
    figures = []
    for k, v in event.items():
        if k in skip:
            continue
        if k == "started":
            v = iso_time(v)
        elif k == "share" or (event.get("metric") == "error_rate" and k in ("value", "mean", "std")):
            v = percent(v)
        elif isinstance(v, float):
            v = f"{v:,.2f}"
        elif isinstance(v, int):
            v = count(v)
        figures.append(f"{k}={v}")
    text = f"{iso_time(event.get('ts'))}  {event.get('type', '?')}  {event.get('detector', '')}  key={event.get('key')}"
    if figures:
        text += "  " + " ".join(figures)
    tops = event.get("top_templates")
    if tops:
        text += "\n      " + "\n      ".join(f"{count(t['count'])}x {t['template']}" for t in tops)
    return text


def _distinct_section(r: dict[str, Any]) -> list[str]:
    distinct = r.get("distinct") or {}
    if not any(d["estimate"] for d in distinct.values()):
        return []
    names = {"ip": "client IPs", "user_agent": "user agents", "path": "paths", "host": "hosts",
             "service": "services", "unique_visitors": "unique visitors (IP, day, user agent; no 4xx)"}
    out = [f"distinct values (HLL sketch: ≈{percent(r['distinct_rel_err'])} relative standard error,"
           " range of two standard deviations):"]
    out += _table(("", "≈count", "range"), ((names.get(k, k), "≈" + count(d["estimate"]),
                                             f"{count(d['lower'])}–{count(d['upper'])}") for k, d in distinct.items()
                                            if d["upper"]))
    return out


def format_text(result: AnalyzeResult) -> str:
    r = result.report
    out = _lines_section(result)
    for title, key in (("rejected", "rejected"), ("notes", "notes")):
        out += _counts(title, r.get(key) or {})
    approximate = r.get("approximate") or {}
    for title, key in (("by format", "by_format"), ("by level", "by_level"), ("by service", "by_service"),
                       ("by host", "by_host")):
        if key in approximate:
            # past the exact-count budget: the figures are the sketch's lower bounds
            title += f" (approximate: each count is a lower bound, the true one at most {count(approximate[key])} more)"
        out += _counts(title, r[key])
    out += _distinct_section(r)
    out += _http_section(r)
    if result.web is not None:
        out += _web_section(result.web)
    for field, rows in result.tops.items():
        if rows:
            out += _top_section(field, rows)
    if result.events is not None:
        out.append(f"events: {len(result.events)} anomalies" + (":" if result.events else ""))
        out += ["  " + event_text(e) for e in result.events]
    return "\n".join(out)


# -- HTML ------------------------------------------------------------------------------------


def format_html(result: AnalyzeResult) -> str:
    """One self-contained page: the dashboard's template and script with this result embedded as
    JSON (`logtallyd.publish.dashboard`), so the report and the live page draw the same panels."""
    data = {
        "report": result.report, "top": result.tops, "web": result.web, "events": result.events,
        "trends": result.trends or {"hour": {"series": {}, "step": 3600}, "day": {"series": {}, "step": 86400}},
        "paths": result.paths, "generated": time.time(), "horizon_s": result.horizon_s,
        "max_future_s": result.max_future_s,
    }
    return report_page(data, f"logtallyd analyze: {', '.join(result.paths)}")
