"""The daemon's Prometheus metrics, for `METRICS` and `/metrics`: a `prometheus_client` Collector
over a `MetricFigures` value the daemon fills from its parts, in a registry of its own beside the
client's process collector and a `logtally_build_info` gauge.

Counters count since this process began listening and restart at zero with it (a restart shows
as a new `process_start_time_seconds`); the since-start totals a snapshot carries over are STATS
figures. Every label value known up front is present from the first scrape, at zero, so an alert
on `rate(...{reason="oversize"}[5m])` has a series to read before the first oversize line.
"""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, Iterable, Iterator, get_args

import msgspec
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.registry import Collector

from logtallyd.detect.events import AnyEvent
from logtallyd.ingest.listeners import RefusalReason
from logtallyd.publish.http import HttpCloseReason
from logtallyd.records import FORMATS, REJECT_REASONS
from logtallyd.stats.lifetime import LEVEL_KEYS, STATUS_CLASSES

__all__ = ["MetricFigures", "FigureCollector", "daemon_registry", "exposition", "render_metrics"]

# Label values present at zero from the start.
EVENT_KINDS: tuple[str, ...] = tuple(kind.__struct_config__.tag for kind in get_args(AnyEvent))
REFUSALS: tuple[str, ...] = get_args(RefusalReason)
HTTP_CLOSES: tuple[str, ...] = get_args(HttpCloseReason)
RESPONSE_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx")
JOB_STATES: tuple[str, ...] = ("running", "done", "cancelled", "failed")
ALERT_OUTCOMES: tuple[str, ...] = ("sent", "failed", "dropped")


class MetricFigures(msgspec.Struct, forbid_unknown_fields=True):
    """Everything `/metrics` shows. Counters count since this process began listening.

    Maps are label value -> figure. `batch_seconds_quantiles` maps a quantile in [0, 1] to seconds;
    with `_sum` and `_count` it is a summary.
    """

    lines_received: int = 0  # counter: frames taken off the wire
    lines_parsed: int = 0  # counter
    lines_rejected: dict[str, int] = {}  # counter by reason: {"oversize": 3, "invalid_utf8": 1}
    lines_by_format: dict[str, int] = {}  # counter by detected format: {"rfc5424": 10, ...}
    lines_by_level: dict[str, int] = {}  # counter by level: {"ERROR": 4, "INFO": 9, "OTHER": 1}
    lines_late: int = 0  # counter: older than the largest window when merged
    lines_future: int = 0  # counter: further ahead of the clock than `stats.max_future_s`
    lines_restored: int = 0  # gauge: what STATS `received` held when this process began listening
    bytes_received: int = 0  # counter
    access_log_responses: dict[str, int] = {}  # counter by status class of parsed access-log lines
    anomaly_events: dict[str, int] = {}  # counter by event kind
    connections_open: int = 0  # gauge
    connections_total: int = 0  # counter: accepted since start
    connections_handshaking: int = 0  # gauge: TLS connections still in their handshake
    connections_refused: dict[str, int] = {}  # counter by reason: {"max_connections": 2, ...}
    connections_idle_closed: int = 0  # counter: closed by `ingest.idle_timeout_s`
    http_connections_closed: dict[str, int] = {}  # counter by reason: {"idle_timeout": 1, ...}
    http_responses: dict[str, int] = {}  # counter by status class: the HTTP API's own answers
    batches_in_flight: int = 0  # gauge: queue depth towards the worker pool
    buffered_bytes: int = 0  # gauge: bytes framed but not yet handed to a batch
    batch_seconds_quantiles: dict[float, float] = {}  # summary quantiles
    batch_seconds_sum: float = 0.0
    batch_seconds_count: int = 0
    pool_workers: int = 0  # gauge: worker processes
    pool_busy_workers: int = 0  # gauge: workers running a task now
    subscribers: int = 0  # gauge
    subscriber_messages_dropped: int = 0  # counter: dropped to lagging subscribers
    jobs: dict[str, int] = {}  # gauge by state: {"running": 2, "done": 7}
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


def _labelled(family: Metric, values: dict[str, int], known: Iterable[str] = ()) -> Metric:
    """`family` with one sample per label value: the known ones (0 until counted), then any other."""
    for key in sorted({*known, *values}):
        family.add_metric([key], values.get(key, 0))  # type: ignore[attr-defined]
    return family


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _families(f: MetricFigures) -> Iterator[Metric]:
    p = "logtally_"
    yield _counter(f"{p}lines_received", "Log lines (frames) received.", f.lines_received)
    yield _counter(f"{p}lines_parsed", "Log lines parsed and counted in the statistics.", f.lines_parsed)
    yield _labelled(CounterMetricFamily(f"{p}lines_rejected", "Log lines rejected, by reason.", labels=["reason"]),
                    f.lines_rejected, REJECT_REASONS)
    yield _labelled(CounterMetricFamily(f"{p}lines_by_format", "Parsed log lines by detected format.",
                                        labels=["format"]), f.lines_by_format, FORMATS)
    yield _labelled(CounterMetricFamily(f"{p}lines_by_level", "Parsed log lines by level (OTHER: a level outside"
                                        " the syslog scale).", labels=["level"]), f.lines_by_level, LEVEL_KEYS)
    yield _counter(f"{p}lines_late", "Parsed lines older than the largest window when merged (in no window).",
                   f.lines_late)
    yield _counter(f"{p}lines_future", "Parsed lines stamped further ahead of the clock than stats.max_future_s.",
                   f.lines_future)
    yield _gauge(f"{p}lines_restored", "Lines the since-start totals (STATS received) held when this process began"
                 " listening: restored from the snapshot, replayed from the archive.", f.lines_restored)
    yield _counter(f"{p}bytes_received", "Bytes received on ingest listeners.", f.bytes_received)
    yield _labelled(CounterMetricFamily(f"{p}access_log_responses", "HTTP responses logged in parsed access-log lines,"
                                        " by status class.", labels=["status_class"]),
                    f.access_log_responses, STATUS_CLASSES)
    yield _labelled(CounterMetricFamily(f"{p}anomaly_events", "Anomaly events found, by kind.", labels=["kind"]),
                    f.anomaly_events, EVENT_KINDS)
    yield _gauge(f"{p}connections_open", "Ingest connections open now.", f.connections_open)
    yield _counter(f"{p}connections", "Ingest connections accepted.", f.connections_total)
    yield _gauge(f"{p}connections_handshaking", "Ingest TLS connections in their handshake now.",
                 f.connections_handshaking)
    yield _labelled(CounterMetricFamily(f"{p}connections_refused", "Ingest connections closed before their first line,"
                                        " by reason.", labels=["reason"]), f.connections_refused, REFUSALS)
    yield _counter(f"{p}connections_idle_closed", "Ingest connections closed for sending nothing within"
                   " ingest.idle_timeout_s.", f.connections_idle_closed)
    yield _labelled(CounterMetricFamily(f"{p}http_connections_closed", "HTTP API connections closed without an answer"
                                        " to a whole request, by reason.", labels=["reason"]),
                    f.http_connections_closed, HTTP_CLOSES)
    yield _labelled(CounterMetricFamily(f"{p}http_responses", "Responses the HTTP API sent, by status class.",
                                        labels=["status_class"]), f.http_responses, RESPONSE_CLASSES)
    yield _gauge(f"{p}batches_in_flight", "Batches handed to the worker pool and not yet merged.", f.batches_in_flight)
    yield _gauge(f"{p}buffered_bytes", "Bytes framed and waiting for a batch.", f.buffered_bytes)
    summary = SummaryMetricFamily(f"{p}batch_seconds", "Time from batch dispatch to merged result.",
                                  count_value=f.batch_seconds_count, sum_value=float(f.batch_seconds_sum))
    for q, seconds in sorted(f.batch_seconds_quantiles.items()):
        summary.add_sample(f"{p}batch_seconds", {"quantile": repr(float(q))}, seconds)
    yield summary
    yield _gauge(f"{p}pool_workers", "Worker processes in the pool.", f.pool_workers)
    yield _gauge(f"{p}pool_busy_workers", "Worker processes running a task now.", f.pool_busy_workers)
    yield _gauge(f"{p}subscribers", "Connected subscribers.", f.subscribers)
    yield _counter(f"{p}subscriber_messages_dropped", "Messages dropped to lagging subscribers.",
                   f.subscriber_messages_dropped)
    yield _labelled(GaugeMetricFamily(f"{p}jobs", "Prime jobs by state.", labels=["state"]), f.jobs, JOB_STATES)
    yield _counter(f"{p}udp_datagrams", "Datagrams read from UDP ingest sockets.", f.udp_datagrams)
    yield _counter(f"{p}udp_kernel_drops", "Datagrams the kernel dropped on UDP ingest sockets (receive buffer full).",
                   f.udp_kernel_drops)
    yield _labelled(CounterMetricFamily(f"{p}periodic_job_failures", "Periodic jobs that raised, by job.",
                                        labels=["job"]), f.job_failures)
    yield _labelled(GaugeMetricFamily(f"{p}distinct_values", "Distinct values seen since start, by field (approximate:"
                                      f" HLL estimate, relative standard error {f.distinct_rel_err:.4f}).",
                                      labels=["field"]), f.distinct_values)
    yield _labelled(GaugeMetricFamily(f"{p}top_approximate", "1 when the since-start top-N counts of a field are"
                                      " approximate (past the exact-count budget).", labels=["field"]),
                    {key: int(err > 0) for key, err in f.top_max_error.items()})
    yield _labelled(GaugeMetricFamily(f"{p}top_max_error", "How far a since-start top-N count of a field may be off:"
                                      " upper - lower bound (0 = exact).", labels=["field"]), f.top_max_error)
    routes = sorted(f.alert_routes.items())
    sent = CounterMetricFamily(f"{p}alert_notifications", "Alert notifications by route and outcome: sent, failed"
                               " (after the last retry), dropped (queue full).", labels=["route", "outcome"])
    retries = CounterMetricFamily(f"{p}alert_retries", "Alert delivery tries after the first, by route.",
                                  labels=["route"])
    queue = GaugeMetricFamily(f"{p}alert_queue", "Alert notifications waiting for delivery, by route.", labels=["route"])
    active = GaugeMetricFamily(f"{p}alerts_active", "Alerts firing now, by route.", labels=["route"])
    for route, counts in routes:
        for outcome in ALERT_OUTCOMES:
            sent.add_metric([route, outcome], counts.get(outcome, 0))
        retries.add_metric([route], counts.get("retried", 0))
        queue.add_metric([route], counts.get("queued", 0))
        active.add_metric([route], counts.get("active", 0))
    yield from (sent, retries, queue, active)
    yield _gauge(f"{p}uptime_seconds", "Seconds since the daemon started.", float(f.uptime_s))


def _build_labels() -> dict[str, str]:
    try:
        ours = version("logtally")
    except PackageNotFoundError:  # a source tree that was never installed
        ours = "0+unknown"
    return {"version": ours, "python": platform.python_version(),
            "implementation": platform.python_implementation()}


class FigureCollector(Collector):
    """The daemon's own families, read from `figures()` at each scrape: one source, the parts'
    `figures()` that STATS reads too, and no second set of counters to keep in step."""

    def __init__(self, figures: Callable[[], MetricFigures | dict[str, Any]]) -> None:
        self.figures = figures
        labels = _build_labels()
        self.build = GaugeMetricFamily("logtally_build_info", "The daemon's version and runtime (always 1).",
                                       labels=list(labels))
        self.build.add_metric(list(labels.values()), 1)

    def collect(self) -> Iterator[Metric]:
        figures = self.figures()
        if not isinstance(figures, MetricFigures):
            figures = msgspec.convert(figures, MetricFigures)
        yield self.build
        yield from _families(figures)


def daemon_registry(figures: Callable[[], MetricFigures]) -> CollectorRegistry:
    """A registry of the daemon's own (never the client's global one, which a second daemon in the
    same process, or a test, would share): its figures, the process and the Python platform."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FigureCollector(figures))
    ProcessCollector(registry=registry)  # process_start_time_seconds, CPU, memory, descriptors
    PlatformCollector(registry=registry)  # python_info
    return registry


def exposition(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The scrape body and its content type for an `Accept` header: OpenMetrics when the scraper
    asks for it (Prometheus does), else the text format 0.0.4."""
    try:
        encode, content_type = choose_encoder(accept)
    except (TypeError, ValueError):  # `version=abc`: the client compares it with a tuple of ints
        # Accept is only a preference (RFC 9110 §12.5.1): one that cannot be read gets the default.
        encode, content_type = generate_latest, CONTENT_TYPE_PLAIN_0_0_4
    return encode(registry), content_type


def render_metrics(figures: MetricFigures | dict[str, Any]) -> str:
    """The text format 0.0.4 of `figures` alone (no process families)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FigureCollector(lambda: figures))
    return generate_latest(registry).decode()
