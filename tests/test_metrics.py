"""Prometheus exposition: the output parses with prometheus_client's own parser and carries the input."""
from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtallyd.publish.metrics import CONTENT_TYPE, MetricFigures, render_metrics

parser = pytest.importorskip("prometheus_client.parser")  # test-only dependency ([test] extra)

FIGURES = MetricFigures(
    lines_received=200_017,
    lines_parsed=199_990,
    lines_rejected={"oversize": 20, "invalid_utf8": 6, "empty": 1},
    lines_by_format={"rfc5424": 120_000, "access": 79_990},
    bytes_received=31_337_000,
    connections_open=3,
    connections_total=41,
    connections_handshaking=2,
    connections_refused={"max_connections": 5, "handshake_timeout": 1},
    http_connections_closed={"idle_timeout": 7},
    batches_in_flight=2,
    buffered_bytes=8192,
    batch_seconds_quantiles={0.5: 0.0125, 0.9: 0.031, 0.99: 0.25},
    batch_seconds_sum=42.5,
    batch_seconds_count=3125,
    pool_workers=2,
    pool_busy_workers=1,
    subscribers=4,
    subscriber_messages_dropped=17,
    jobs={"queued": 1, "running": 2, "done": 9},
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


def test_every_figure_round_trips() -> None:
    got = samples(render_metrics(FIGURES))
    expected = {
        ("logtally_lines_received_total", ()): 200_017,
        ("logtally_lines_parsed_total", ()): 199_990,
        ("logtally_lines_rejected_total", (("reason", "empty"),)): 1,
        ("logtally_lines_rejected_total", (("reason", "invalid_utf8"),)): 6,
        ("logtally_lines_rejected_total", (("reason", "oversize"),)): 20,
        ("logtally_lines_by_format_total", (("format", "access"),)): 79_990,
        ("logtally_lines_by_format_total", (("format", "rfc5424"),)): 120_000,
        ("logtally_bytes_received_total", ()): 31_337_000,
        ("logtally_connections_open", ()): 3,
        ("logtally_connections_total", ()): 41,
        ("logtally_connections_handshaking", ()): 2,
        ("logtally_connections_refused_total", (("reason", "handshake_timeout"),)): 1,
        ("logtally_connections_refused_total", (("reason", "max_connections"),)): 5,
        ("logtally_http_connections_closed_total", (("reason", "idle_timeout"),)): 7,
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
        ("logtally_jobs", (("state", "queued"),)): 1,
        ("logtally_jobs", (("state", "running"),)): 2,
        ("logtally_udp_datagrams_total", ()): 1234,
        ("logtally_udp_kernel_drops_total", ()): 56,
        ("logtally_distinct_values", (("field", "ip"),)): 1_777_569,
        ("logtally_distinct_values", (("field", "service"),)): 3,
        ("logtally_top_approximate", (("field", "ip"),)): 1,  # past the budget: marked
        ("logtally_top_approximate", (("field", "service"),)): 0,
        ("logtally_top_max_error", (("field", "ip"),)): 2600,
        ("logtally_top_max_error", (("field", "service"),)): 0,
        ("logtally_alert_notifications_total", (("outcome", "dropped"), ("route", "oncall"))): 2,
        ("logtally_alert_notifications_total", (("outcome", "failed"), ("route", "oncall"))): 1,
        ("logtally_alert_notifications_total", (("outcome", "sent"), ("route", "oncall"))): 5,
        ("logtally_alert_retries_total", (("route", "oncall"),)): 3,
        ("logtally_alert_queue", (("route", "oncall"),)): 4,
        ("logtally_alerts_active", (("route", "oncall"),)): 6,
        ("logtally_uptime_seconds", ()): 3600.5,
    }
    assert got == expected


def test_types_follow_conventions() -> None:
    text = render_metrics(FIGURES)
    kinds = types(text)
    # prometheus_client names a counter family without its `_total` suffix.
    assert kinds["logtally_lines_received"] == "counter"
    assert kinds["logtally_lines_rejected"] == "counter"
    assert kinds["logtally_subscriber_messages_dropped"] == "counter"
    assert kinds["logtally_connections_open"] == "gauge"
    assert kinds["logtally_batch_seconds"] == "summary"
    assert kinds["logtally_jobs"] == "gauge"
    assert text.endswith("\n") and "\n\n" not in text
    assert "# TYPE logtally_lines_received_total counter\n" in text
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_plain_dict_input_is_converted_and_validated() -> None:
    assert render_metrics(msgspec.to_builtins(FIGURES)) == render_metrics(FIGURES)
    with pytest.raises(msgspec.ValidationError, match="lines_recieved"):
        render_metrics({"lines_recieved": 1})
    with pytest.raises(msgspec.ValidationError, match="lines_received"):
        render_metrics({"lines_received": "many"})


def test_empty_figures_still_parse() -> None:
    got = samples(render_metrics(MetricFigures()))
    assert got[("logtally_lines_received_total", ())] == 0
    assert not any(name == "logtally_lines_rejected_total" for name, _ in got)


def test_non_finite_quantiles_use_prometheus_spelling() -> None:
    text = render_metrics(MetricFigures(batch_seconds_quantiles={0.5: math.nan, 1.0: math.inf}))
    assert 'logtally_batch_seconds{quantile="0.5"} NaN\n' in text
    assert 'logtally_batch_seconds{quantile="1.0"} +Inf\n' in text
    got = samples(text)
    assert math.isnan(got[("logtally_batch_seconds", (("quantile", "0.5"),))])
    assert got[("logtally_batch_seconds", (("quantile", "1.0"),))] == math.inf


def test_label_escaping_exact() -> None:
    text = render_metrics(MetricFigures(lines_rejected={'a"b\\c\nd': 2}))
    assert 'logtally_lines_rejected_total{reason="a\\"b\\\\c\\nd"} 2\n' in text


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=30), st.integers(0, 2**53), max_size=6))
def test_any_reason_text_round_trips(reasons: dict[str, int]) -> None:
    got = samples(render_metrics(MetricFigures(lines_rejected=reasons)))
    back = {labels[0][1]: value for (name, labels), value in got.items() if name == "logtally_lines_rejected_total"}
    assert back == reasons
