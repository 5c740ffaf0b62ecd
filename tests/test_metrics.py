"""Prometheus exposition: the output parses with prometheus_client's own parsers (text and OpenMetrics),
carries the input, and has every label value known up front from the start, at zero."""
from __future__ import annotations

import math
import platform

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_client import parser
from prometheus_client.openmetrics import parser as om_parser

from logtallyd.publish.metrics import EVENT_KINDS, MetricFigures, daemon_registry, exposition, render_metrics
from logtallyd.records import FORMATS, REJECT_REASONS
from logtallyd.stats.lifetime import LEVEL_KEYS

FIGURES = MetricFigures(
    lines_received=200_017,
    lines_parsed=199_990,
    lines_rejected={"oversize": 20, "invalid_utf8": 6, "empty": 1},
    lines_by_format={"rfc5424": 120_000, "access": 79_990},
    lines_by_level={"ERROR": 7, "INFO": 199_983},
    lines_late=4,
    lines_future=2,
    lines_restored=1_000,
    bytes_received=31_337_000,
    access_log_responses={"2xx": 79_000, "5xx": 990},
    anomaly_events={"error_spike": 3},
    connections_open=3,
    connections_total=41,
    connections_handshaking=2,
    connections_refused={"max_connections": 5, "handshake_timeout": 1},
    connections_idle_closed=8,
    http_connections_closed={"idle_timeout": 7},
    http_responses={"2xx": 30, "4xx": 2},
    batches_in_flight=2,
    buffered_bytes=8192,
    batch_seconds_quantiles={0.5: 0.0125, 0.9: 0.031, 0.99: 0.25},
    batch_seconds_sum=42.5,
    batch_seconds_count=3125,
    pool_workers=2,
    pool_busy_workers=1,
    subscribers=4,
    subscriber_messages_dropped=17,
    jobs={"running": 2, "done": 9},
    uptime_s=3600.5,
    udp_datagrams=1234,
    udp_kernel_drops=56,
    distinct_values={"ip": 1_777_569, "service": 3},
    distinct_rel_err=0.0162,
    top_max_error={"ip": 2600, "service": 0},
    alert_routes={"oncall": {"sent": 5, "retried": 3, "failed": 1, "dropped": 2, "queued": 4, "active": 6}},
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def types(text: str) -> dict[str, str]:
    return {fam.name: fam.type for fam in parser.text_string_to_metric_families(text)}


def label_values(text: str, name: str, label: str) -> set[str]:
    return {labels[0][1] for (sample, labels), _ in samples(text).items() if sample == name and labels[0][0] == label}


# Every non-zero sample `render_metrics(FIGURES)` has, but logtally_build_info (its labels depend on the install).
EXPECTED = {
    ("logtally_lines_received_total", ()): 200_017,
    ("logtally_lines_parsed_total", ()): 199_990,
    ("logtally_lines_rejected_total", (("reason", "empty"),)): 1,
    ("logtally_lines_rejected_total", (("reason", "invalid_utf8"),)): 6,
    ("logtally_lines_rejected_total", (("reason", "oversize"),)): 20,
    ("logtally_lines_by_format_total", (("format", "access"),)): 79_990,
    ("logtally_lines_by_format_total", (("format", "rfc5424"),)): 120_000,
    ("logtally_lines_by_level_total", (("level", "ERROR"),)): 7,
    ("logtally_lines_by_level_total", (("level", "INFO"),)): 199_983,
    ("logtally_lines_late_total", ()): 4,
    ("logtally_lines_future_total", ()): 2,
    ("logtally_lines_restored", ()): 1_000,
    ("logtally_bytes_received_total", ()): 31_337_000,
    ("logtally_access_log_responses_total", (("status_class", "2xx"),)): 79_000,
    ("logtally_access_log_responses_total", (("status_class", "5xx"),)): 990,
    ("logtally_anomaly_events_total", (("kind", "error_spike"),)): 3,
    ("logtally_connections_open", ()): 3,
    ("logtally_connections_total", ()): 41,
    ("logtally_connections_handshaking", ()): 2,
    ("logtally_connections_refused_total", (("reason", "handshake_timeout"),)): 1,
    ("logtally_connections_refused_total", (("reason", "max_connections"),)): 5,
    ("logtally_connections_idle_closed_total", ()): 8,
    ("logtally_http_connections_closed_total", (("reason", "idle_timeout"),)): 7,
    ("logtally_http_responses_total", (("status_class", "2xx"),)): 30,
    ("logtally_http_responses_total", (("status_class", "4xx"),)): 2,
    ("logtally_batches_in_flight", ()): 2,
    ("logtally_buffered_bytes", ()): 8192,
    ("logtally_batch_seconds", (("quantile", "0.5"),)): 0.0125,
    ("logtally_batch_seconds", (("quantile", "0.9"),)): 0.031,
    ("logtally_batch_seconds", (("quantile", "0.99"),)): 0.25,
    ("logtally_batch_seconds_sum", ()): 42.5,
    ("logtally_batch_seconds_count", ()): 3125,
    ("logtally_pool_workers", ()): 2,
    ("logtally_pool_busy_workers", ()): 1,
    ("logtally_subscribers", ()): 4,
    ("logtally_subscriber_messages_dropped_total", ()): 17,
    ("logtally_jobs", (("state", "done"),)): 9,
    ("logtally_jobs", (("state", "running"),)): 2,
    ("logtally_udp_datagrams_total", ()): 1234,
    ("logtally_udp_kernel_drops_total", ()): 56,
    ("logtally_distinct_values", (("field", "ip"),)): 1_777_569,
    ("logtally_distinct_values", (("field", "service"),)): 3,
    ("logtally_top_approximate", (("field", "ip"),)): 1,  # past the budget: marked
    ("logtally_top_max_error", (("field", "ip"),)): 2600,
    ("logtally_alert_notifications_total", (("outcome", "dropped"), ("route", "oncall"))): 2,
    ("logtally_alert_notifications_total", (("outcome", "failed"), ("route", "oncall"))): 1,
    ("logtally_alert_notifications_total", (("outcome", "sent"), ("route", "oncall"))): 5,
    ("logtally_alert_retries_total", (("route", "oncall"),)): 3,
    ("logtally_alert_queue", (("route", "oncall"),)): 4,
    ("logtally_alerts_active", (("route", "oncall"),)): 6,
    ("logtally_uptime_seconds", ()): 3600.5,
}


def test_every_figure_round_trips() -> None:
    got = samples(render_metrics(FIGURES))
    assert {key: value for key, value in got.items() if value and key[0] != "logtally_build_info"} == EXPECTED
    assert got[("logtally_top_approximate", (("field", "service"),))] == 0  # exact: present, 0


def test_known_label_values_are_there_from_the_start() -> None:
    text = render_metrics(MetricFigures())
    assert label_values(text, "logtally_lines_rejected_total", "reason") == set(REJECT_REASONS)
    assert label_values(text, "logtally_lines_by_format_total", "format") == set(FORMATS)
    assert label_values(text, "logtally_lines_by_level_total", "level") == set(LEVEL_KEYS)
    assert label_values(text, "logtally_access_log_responses_total", "status_class") == {
        "1xx", "2xx", "3xx", "4xx", "5xx", "invalid"}
    assert label_values(text, "logtally_http_responses_total", "status_class") == {"1xx", "2xx", "3xx", "4xx", "5xx"}
    assert label_values(text, "logtally_anomaly_events_total", "kind") == set(EVENT_KINDS) >= {
        "error_spike", "zscore", "suspicious_ip", "new_template", "pattern", "resolved"}
    assert label_values(text, "logtally_connections_refused_total", "reason") >= {"max_connections", "handshake_timeout"}
    assert label_values(text, "logtally_http_connections_closed_total", "reason") >= {"idle_timeout", "bad_request"}
    assert {v for k, v in samples(text).items() if k[0] != "logtally_build_info"} == {0}
    # a label value the daemon did not know up front still shows, beside the known ones
    text = render_metrics(MetricFigures(lines_rejected={"invalid_utf8": 6}))
    assert label_values(text, "logtally_lines_rejected_total", "reason") == {*REJECT_REASONS, "invalid_utf8"}


def test_build_info() -> None:
    got = {labels: value for (name, labels), value in samples(render_metrics(FIGURES)).items()
           if name == "logtally_build_info"}
    (labels, value), = got.items()
    assert value == 1 and dict(labels)["python"] == platform.python_version()
    assert set(dict(labels)) == {"version", "python", "implementation"}


def test_types_follow_conventions() -> None:
    text = render_metrics(FIGURES)
    kinds = types(text)
    # prometheus_client names a counter family without its `_total` suffix.
    assert kinds["logtally_lines_received"] == "counter"
    assert kinds["logtally_lines_rejected"] == "counter"
    assert kinds["logtally_subscriber_messages_dropped"] == "counter"
    assert kinds["logtally_anomaly_events"] == "counter"
    assert kinds["logtally_connections_open"] == "gauge"
    assert kinds["logtally_lines_restored"] == "gauge"
    assert kinds["logtally_batch_seconds"] == "summary"
    assert kinds["logtally_jobs"] == "gauge"
    assert kinds["logtally_build_info"] == "gauge"
    assert text.endswith("\n") and "\n\n" not in text
    assert "# TYPE logtally_lines_received_total counter\n" in text


def test_daemon_registry_adds_process_metrics_and_negotiates_openmetrics() -> None:
    registry = daemon_registry(lambda: FIGURES)
    body, content_type = exposition(registry, "")
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    names = types(body.decode())
    assert {"process_start_time_seconds", "process_cpu_seconds", "process_resident_memory_bytes",
            "process_open_fds", "python_info", "logtally_lines_received"} <= set(names)
    # what Prometheus sends: OpenMetrics first
    accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," \
             "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    body, content_type = exposition(registry, accept)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
    families = {f.name: f for f in om_parser.text_string_to_metric_families(body.decode())}
    assert families["logtally_lines_received"].type == "counter"
    assert families["logtally_lines_received"].samples[0].value == 200_017


def test_one_registry_per_daemon() -> None:
    first = daemon_registry(lambda: MetricFigures(lines_received=1))
    second = daemon_registry(lambda: MetricFigures(lines_received=2))
    assert samples(exposition(first)[0].decode())[("logtally_lines_received_total", ())] == 1
    assert samples(exposition(second)[0].decode())[("logtally_lines_received_total", ())] == 2


def test_plain_dict_input_is_converted_and_validated() -> None:
    assert render_metrics(msgspec.to_builtins(FIGURES)) == render_metrics(FIGURES)
    with pytest.raises(msgspec.ValidationError, match="lines_recieved"):
        render_metrics({"lines_recieved": 1})
    with pytest.raises(msgspec.ValidationError, match="lines_received"):
        render_metrics({"lines_received": "many"})


def test_empty_figures_still_parse() -> None:
    got = samples(render_metrics(MetricFigures()))
    assert got[("logtally_lines_received_total", ())] == 0
    assert got[("logtally_lines_rejected_total", (("reason", "oversize"),))] == 0


def test_non_finite_quantiles_use_prometheus_spelling() -> None:
    text = render_metrics(MetricFigures(batch_seconds_quantiles={0.5: math.nan, 1.0: math.inf}))
    assert 'logtally_batch_seconds{quantile="0.5"} NaN\n' in text
    assert 'logtally_batch_seconds{quantile="1.0"} +Inf\n' in text
    got = samples(text)
    assert math.isnan(got[("logtally_batch_seconds", (("quantile", "0.5"),))])
    assert got[("logtally_batch_seconds", (("quantile", "1.0"),))] == math.inf


def test_label_escaping_exact() -> None:
    text = render_metrics(MetricFigures(job_failures={'a"b\\c\nd': 2}))
    assert 'logtally_periodic_job_failures_total{job="a\\"b\\\\c\\nd"} 2.0\n' in text


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=30).filter(lambda r: r not in REJECT_REASONS),
                       st.integers(0, 2**53), max_size=6))
def test_any_reason_text_round_trips(reasons: dict[str, int]) -> None:
    got = samples(render_metrics(MetricFigures(lines_rejected=reasons)))
    back = {labels[0][1]: value for (name, labels), value in got.items() if name == "logtally_lines_rejected_total"}
    assert back == {**dict.fromkeys(REJECT_REASONS, 0), **reasons}
