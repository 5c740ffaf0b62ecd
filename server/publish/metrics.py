"""Prometheus text exposition (format 0.0.4) of the daemon's own figures, for `METRICS` and `/metrics`.

A pure function of a `MetricFigures` value: the server fills the Struct from its counters and
gauges, this module only renders. Names follow the Prometheus conventions: `logtally_` prefix,
base units (`_seconds`, `_bytes`), `_total` on counters.
"""
from __future__ import annotations

import math
from typing import Any

import msgspec

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricFigures(msgspec.Struct, forbid_unknown_fields=True):
    """Everything `/metrics` shows. Counters are totals since start (or since the restored snapshot).

    Maps are label value -> figure. `batch_seconds_quantiles` maps a quantile in [0, 1] to seconds
    (e.g. from the KLL sketch of batch latencies); with `_sum` and `_count` it is a summary.
    """

    lines_received: int = 0  # counter: frames taken off the wire
    lines_parsed: int = 0  # counter
    lines_rejected: dict[str, int] = {}  # counter by reason: {"oversize": 3, "invalid_utf8": 1}
    lines_by_format: dict[str, int] = {}  # counter by detected format: {"rfc5424": 10, ...}
    bytes_received: int = 0  # counter
    connections_open: int = 0  # gauge
    connections_total: int = 0  # counter: accepted since start
    connections_handshaking: int = 0  # gauge: TLS connections still in their handshake
    connections_refused: dict[str, int] = {}  # counter by reason: {"max_connections": 2, ...}
    http_connections_closed: dict[str, int] = {}  # counter by reason: {"idle_timeout": 1, ...}
    batches_in_flight: int = 0  # gauge: queue depth towards the worker pool
    buffered_bytes: int = 0  # gauge: bytes framed but not yet handed to a batch
    batch_seconds_quantiles: dict[float, float] = {}  # summary quantiles
    batch_seconds_sum: float = 0.0
    batch_seconds_count: int = 0
    pool_workers: int = 0  # gauge: worker processes
    pool_busy_workers: int = 0  # gauge: workers running a task now
    subscribers: int = 0  # gauge
    subscriber_messages_dropped: int = 0  # counter: dropped to lagging subscribers
    jobs: dict[str, int] = {}  # gauge by state: {"queued": 1, "running": 2, "done": 7}
    uptime_s: float = 0.0  # gauge
    udp_datagrams: int = 0  # counter: datagrams read from UDP ingest sockets
    udp_kernel_drops: int = 0  # counter: datagrams the kernel dropped (receive buffer full)
    job_failures: dict[str, int] = {}  # counter by periodic job: times it raised
    # gauges by field, since start: HLL estimates of distinct values (relative standard error
    # `distinct_rel_err`), and how far a top-N count may be off (upper - lower; 0 = exact)
    distinct_values: dict[str, int] = {}
    distinct_rel_err: float = 0.0
    top_max_error: dict[str, int] = {}
    # by `[[alerts]]` route: counters sent, retried, failed, dropped; gauges queued, active
    alert_routes: dict[str, dict[str, int]] = {}


def escape_label_value(value: str) -> str:
    """Text format 0.0.4: in label values `\\`, `"` and newline are escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Text format 0.0.4: in HELP text `\\` and newline are escaped (quotes are not)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Go's ParseFloat spellings for the special values; integers without a trailing `.0`."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def sample(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        body = ",".join(f'{key}="{escape_label_value(val)}"' for key, val in labels.items())
        return f"{name}{{{body}}} {format_value(value)}"
    return f"{name} {format_value(value)}"


def family(name: str, kind: str, help_text: str, samples: list[str]) -> list[str]:
    return [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}", *samples]


def labelled(name: str, label: str, values: dict[str, int]) -> list[str]:
    return [sample(name, count, {label: key}) for key, count in sorted(values.items())]


def render_metrics(figures: MetricFigures | dict[str, Any]) -> str:
    """The exposition text for `figures` (a `MetricFigures` or a dict of its fields), newline-terminated."""
    if not isinstance(figures, MetricFigures):
        figures = msgspec.convert(figures, MetricFigures)
    f = figures
    p = "logtally_"
    quantiles = [
        sample(f"{p}batch_seconds", seconds, {"quantile": format_value(float(q))})
        for q, seconds in sorted(f.batch_seconds_quantiles.items())
    ]
    lines = [
        *family(f"{p}lines_received_total", "counter", "Log lines (frames) received.",
                [sample(f"{p}lines_received_total", f.lines_received)]),
        *family(f"{p}lines_parsed_total", "counter", "Log lines parsed and counted in the statistics.",
                [sample(f"{p}lines_parsed_total", f.lines_parsed)]),
        *family(f"{p}lines_rejected_total", "counter", "Log lines rejected, by reason.",
                labelled(f"{p}lines_rejected_total", "reason", f.lines_rejected)),
        *family(f"{p}lines_by_format_total", "counter", "Parsed log lines by detected format.",
                labelled(f"{p}lines_by_format_total", "format", f.lines_by_format)),
        *family(f"{p}bytes_received_total", "counter", "Bytes received on ingest listeners.",
                [sample(f"{p}bytes_received_total", f.bytes_received)]),
        *family(f"{p}connections_open", "gauge", "Ingest connections open now.",
                [sample(f"{p}connections_open", f.connections_open)]),
        *family(f"{p}connections_total", "counter", "Ingest connections accepted.",
                [sample(f"{p}connections_total", f.connections_total)]),
        *family(f"{p}connections_handshaking", "gauge", "Ingest TLS connections in their handshake now.",
                [sample(f"{p}connections_handshaking", f.connections_handshaking)]),
        *family(f"{p}connections_refused_total", "counter",
                "Ingest connections closed before their first line, by reason.",
                labelled(f"{p}connections_refused_total", "reason", f.connections_refused)),
        *family(f"{p}http_connections_closed_total", "counter",
                "HTTP connections closed without an answer to a whole request, by reason.",
                labelled(f"{p}http_connections_closed_total", "reason", f.http_connections_closed)),
        *family(f"{p}batches_in_flight", "gauge", "Batches handed to the worker pool and not yet merged.",
                [sample(f"{p}batches_in_flight", f.batches_in_flight)]),
        *family(f"{p}buffered_bytes", "gauge", "Bytes framed and waiting for a batch.",
                [sample(f"{p}buffered_bytes", f.buffered_bytes)]),
        *family(f"{p}batch_seconds", "summary", "Time from batch dispatch to merged result.",
                [*quantiles, sample(f"{p}batch_seconds_sum", float(f.batch_seconds_sum)),
                 sample(f"{p}batch_seconds_count", f.batch_seconds_count)]),
        *family(f"{p}pool_workers", "gauge", "Worker processes in the pool.",
                [sample(f"{p}pool_workers", f.pool_workers)]),
        *family(f"{p}pool_busy_workers", "gauge", "Worker processes running a task now.",
                [sample(f"{p}pool_busy_workers", f.pool_busy_workers)]),
        *family(f"{p}subscribers", "gauge", "Connected subscribers.",
                [sample(f"{p}subscribers", f.subscribers)]),
        *family(f"{p}subscriber_messages_dropped_total", "counter", "Messages dropped to lagging subscribers.",
                [sample(f"{p}subscriber_messages_dropped_total", f.subscriber_messages_dropped)]),
        *family(f"{p}jobs", "gauge", "Jobs by state.", labelled(f"{p}jobs", "state", f.jobs)),
        *family(f"{p}udp_datagrams_total", "counter", "Datagrams read from UDP ingest sockets.",
                [sample(f"{p}udp_datagrams_total", f.udp_datagrams)]),
        *family(f"{p}udp_kernel_drops_total", "counter",
                "Datagrams the kernel dropped on UDP ingest sockets (receive buffer full).",
                [sample(f"{p}udp_kernel_drops_total", f.udp_kernel_drops)]),
        *family(f"{p}periodic_job_failures_total", "counter", "Periodic jobs that raised, by job.",
                labelled(f"{p}periodic_job_failures_total", "job", f.job_failures)),
        *family(f"{p}distinct_values", "gauge",
                f"Distinct values seen since start, by field (approximate: HLL estimate, relative standard"
                f" error {f.distinct_rel_err:.4f}).",
                labelled(f"{p}distinct_values", "field", f.distinct_values)),
        *family(f"{p}top_approximate", "gauge",
                "1 when the since-start top-N counts of a field are approximate (past the exact-count budget).",
                [sample(f"{p}top_approximate", int(err > 0), {"field": key})
                 for key, err in sorted(f.top_max_error.items())]),
        *family(f"{p}top_max_error", "gauge",
                "How far a since-start top-N count of a field may be off: upper - lower bound (0 = exact).",
                labelled(f"{p}top_max_error", "field", f.top_max_error)),
        *family(f"{p}alert_notifications_total", "counter",
                "Alert notifications by route and outcome: sent, failed (after the last retry), dropped (queue full).",
                [sample(f"{p}alert_notifications_total", counts.get(outcome, 0), {"route": route, "outcome": outcome})
                 for route, counts in sorted(f.alert_routes.items()) for outcome in ("sent", "failed", "dropped")]),
        *family(f"{p}alert_retries_total", "counter", "Alert delivery tries after the first, by route.",
                [sample(f"{p}alert_retries_total", counts.get("retried", 0), {"route": route})
                 for route, counts in sorted(f.alert_routes.items())]),
        *family(f"{p}alert_queue", "gauge", "Alert notifications waiting for delivery, by route.",
                [sample(f"{p}alert_queue", counts.get("queued", 0), {"route": route})
                 for route, counts in sorted(f.alert_routes.items())]),
        *family(f"{p}alerts_active", "gauge", "Alerts firing now, by route.",
                [sample(f"{p}alerts_active", counts.get("active", 0), {"route": route})
                 for route, counts in sorted(f.alert_routes.items())]),
        *family(f"{p}uptime_seconds", "gauge", "Seconds since the daemon started.",
                [sample(f"{p}uptime_seconds", float(f.uptime_s))]),
    ]
    return "\n".join(lines) + "\n"
