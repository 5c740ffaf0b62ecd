"""The README's `nc` examples against a real daemon: the exact bytes of each answer (key order
included), with only the figures that depend on timing left open."""
from __future__ import annotations

import json
import re
import socket
from typing import Any

import pytest

from tests.conftest import ServerProcess, send_tcp

# The README's example line, sent twice as `echo '...' | nc -N 127.0.0.1 5140` would.
LINE = b"<11>1 2025-01-30T12:00:00Z web-1 api 42 - - Database connection failed for user 42\n"
# Two workers, so the pool figures do not depend on the machine; a COUNT answers with its result.
CONFIG = "[pipeline]\nworkers = 2\n[primes]\nanswer_within_s = 600\n"

LIVE = ...  # a figure that depends on timing: only its key and its place are pinned


def nc(server: ServerProcess, line: str) -> bytes:
    """`echo LINE | nc -N 127.0.0.1 5141`: send, half-close, read until the daemon closes."""
    with socket.create_connection(server.address("control"), timeout=120) as sock:
        sock.sendall(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


def assert_like(actual: Any, expected: Any, where: str = "") -> None:
    """Same keys in the same order, same values, except where `expected` says LIVE."""
    if expected is LIVE:
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert list(actual) == list(expected), where
        for key in expected:
            assert_like(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (where, actual)
        for i, (got, want) in enumerate(zip(actual, expected)):
            assert_like(got, want, f"{where}[{i}]")
    else:
        assert actual == expected and type(actual) is type(expected), (where, actual, expected)


def stats_answer(window: str, window_s: int | None) -> dict[str, Any]:
    return {
        "window": window, "window_s": window_s, "anchor": 1738238400, "received": 2, "parsed": 2,
        "rejected": {}, "bytes": 164, "by_format": {"rfc5424": 2}, "notes": {}, "by_level": {"ERROR": 2},
        "by_service": {"api": 2}, "by_host": {"web-1": 2}, "approximate": {}, "errors": 2, "error_rate": 1.0,
        "http": {
            "requests": 0, "by_method": {}, "by_status": {}, "by_class": {}, "rate_5xx": 0.0,
            "latency_ms": {"count": 0, "min": None, "max": None, "avg": None, "p50": None, "p95": None, "p99": None},
            "bytes_sent": 0,
        },
        "first_ts": 1738238400.0, "last_ts": 1738238400.0, "lines_per_s": 2.0, "late": 0, "future": 0,
        "distinct": {
            "ip": {"estimate": 0, "lower": 0, "upper": 0}, "user_agent": {"estimate": 0, "lower": 0, "upper": 0},
            "path": {"estimate": 0, "lower": 0, "upper": 0}, "host": {"estimate": 1, "lower": 1, "upper": 1},
            "service": {"estimate": 1, "lower": 1, "upper": 1},
            "unique_visitors": {"estimate": 0, "lower": 0, "upper": 0},
        },
        "distinct_rel_err": 0.0162,
        "connections": {"open": LIVE, "total": 2, "refused": 0, "idle_closed": 0, "handshaking": 0, "refused_by": {}},
        "peers": {"tracked": 1, "evicted": 0, "top": [
            {"peer": "127.0.0.1", "lines": 2, "connections": LIVE, "rate_pauses": 0, "rate_dropped": 0},
        ]},
        "pipeline": {"in_flight": 0, "queued_batches": 0, "buffered_bytes": 0, "paused": False, "pauses": 0,
                     "batches": LIVE},
        "subscribers": {"open": 0, "dropped_messages": 0, "disconnected_stalled": 0, "tail_skipped": 0},
        "udp": {"datagrams": 0, "kernel_drops": 0},
        "control": {"auth_ok": 0, "refused": {}},
        "detect": {
            "feeds": LIVE, "records": 2, "dropped_matches": 0, "pending_seconds": LIVE, "untracked_spike_errors": 0,
            "untracked_zscore_lines": 0, "untracked_ip_requests": 0, "untracked_pattern_keys": 0,
            "suppressed_new_templates": 0, "forgotten_senders": 0,
        },
        "job_failures": {},
        "uptime_s": LIVE,
        "rejects_file": {"written": 0, "dropped": 0},
        "history": {"rows_written": LIVE, "rows_lost": 0, "failed": 0},  # minute rows written to history.sqlite (timing)
        "http_server": {"open": 0, "total": 0, "closed_by": {}, "responses_by_class": {}},  # on by default
    }


# METRICS as the daemon wrote it; `<LIVE>` marks a figure that depends on timing or on the install.
# Every label value known up front is there at 0; the process and Python families follow the daemon's own.
METRICS = (
    "# HELP logtally_build_info The daemon's version and runtime (always 1).\n"
    '# TYPE logtally_build_info gauge\n'
    'logtally_build_info{<LIVE>} 1.0\n'
    '# HELP logtally_lines_received_total Log lines (frames) received.\n'
    '# TYPE logtally_lines_received_total counter\n'
    'logtally_lines_received_total 2.0\n'
    '# HELP logtally_lines_parsed_total Log lines parsed and counted in the statistics.\n'
    '# TYPE logtally_lines_parsed_total counter\n'
    'logtally_lines_parsed_total 2.0\n'
    '# HELP logtally_lines_rejected_total Log lines rejected, by reason.\n'
    '# TYPE logtally_lines_rejected_total counter\n'
    'logtally_lines_rejected_total{reason="bad_pri"} 0.0\n'
    'logtally_lines_rejected_total{reason="empty"} 0.0\n'
    'logtally_lines_rejected_total{reason="internal_error"} 0.0\n'
    'logtally_lines_rejected_total{reason="invalid_access"} 0.0\n'
    'logtally_lines_rejected_total{reason="invalid_app"} 0.0\n'
    'logtally_lines_rejected_total{reason="invalid_json"} 0.0\n'
    'logtally_lines_rejected_total{reason="invalid_rfc3164"} 0.0\n'
    'logtally_lines_rejected_total{reason="invalid_rfc5424"} 0.0\n'
    'logtally_lines_rejected_total{reason="oversize"} 0.0\n'
    'logtally_lines_rejected_total{reason="rate_limited"} 0.0\n'
    'logtally_lines_rejected_total{reason="truncated"} 0.0\n'
    '# HELP logtally_lines_by_format_total Parsed log lines by detected format.\n'
    '# TYPE logtally_lines_by_format_total counter\n'
    'logtally_lines_by_format_total{format="access"} 0.0\n'
    'logtally_lines_by_format_total{format="app"} 0.0\n'
    'logtally_lines_by_format_total{format="json"} 0.0\n'
    'logtally_lines_by_format_total{format="raw"} 0.0\n'
    'logtally_lines_by_format_total{format="rfc3164"} 0.0\n'
    'logtally_lines_by_format_total{format="rfc5424"} 2.0\n'
    '# HELP logtally_lines_by_level_total Parsed log lines by level (OTHER: a level outside the syslog scale).\n'
    '# TYPE logtally_lines_by_level_total counter\n'
    'logtally_lines_by_level_total{level="ALERT"} 0.0\n'
    'logtally_lines_by_level_total{level="CRIT"} 0.0\n'
    'logtally_lines_by_level_total{level="DEBUG"} 0.0\n'
    'logtally_lines_by_level_total{level="EMERG"} 0.0\n'
    'logtally_lines_by_level_total{level="ERROR"} 2.0\n'
    'logtally_lines_by_level_total{level="INFO"} 0.0\n'
    'logtally_lines_by_level_total{level="NOTICE"} 0.0\n'
    'logtally_lines_by_level_total{level="OTHER"} 0.0\n'
    'logtally_lines_by_level_total{level="WARNING"} 0.0\n'
    '# HELP logtally_lines_late_total Parsed lines older than the largest window when merged (in no window).\n'
    '# TYPE logtally_lines_late_total counter\n'
    'logtally_lines_late_total 0.0\n'
    '# HELP logtally_lines_future_total Parsed lines stamped further ahead of the clock than stats.max_future_s.\n'
    '# TYPE logtally_lines_future_total counter\n'
    'logtally_lines_future_total 0.0\n'
    '# HELP logtally_lines_restored Lines the since-start totals (STATS received) held when this process began listening: restored from the snapshot, replayed from the archive.\n'
    '# TYPE logtally_lines_restored gauge\n'
    'logtally_lines_restored 0.0\n'
    '# HELP logtally_bytes_received_total Bytes received on ingest listeners.\n'
    '# TYPE logtally_bytes_received_total counter\n'
    'logtally_bytes_received_total 164.0\n'
    '# HELP logtally_access_log_responses_total HTTP responses logged in parsed access-log lines, by status class.\n'
    '# TYPE logtally_access_log_responses_total counter\n'
    'logtally_access_log_responses_total{status_class="1xx"} 0.0\n'
    'logtally_access_log_responses_total{status_class="2xx"} 0.0\n'
    'logtally_access_log_responses_total{status_class="3xx"} 0.0\n'
    'logtally_access_log_responses_total{status_class="4xx"} 0.0\n'
    'logtally_access_log_responses_total{status_class="5xx"} 0.0\n'
    'logtally_access_log_responses_total{status_class="invalid"} 0.0\n'
    '# HELP logtally_anomaly_events_total Anomaly events found, by kind.\n'
    '# TYPE logtally_anomaly_events_total counter\n'
    'logtally_anomaly_events_total{kind="error_spike"} 0.0\n'
    'logtally_anomaly_events_total{kind="new_template"} 0.0\n'
    'logtally_anomaly_events_total{kind="pattern"} 0.0\n'
    'logtally_anomaly_events_total{kind="resolved"} 0.0\n'
    'logtally_anomaly_events_total{kind="sender_back"} 0.0\n'
    'logtally_anomaly_events_total{kind="sender_flood"} 0.0\n'
    'logtally_anomaly_events_total{kind="sender_silent"} 0.0\n'
    'logtally_anomaly_events_total{kind="suspicious_ip"} 0.0\n'
    'logtally_anomaly_events_total{kind="zscore"} 0.0\n'
    '# HELP logtally_connections_open Ingest connections open now.\n'
    '# TYPE logtally_connections_open gauge\n'
    'logtally_connections_open <LIVE>\n'
    '# HELP logtally_connections_total Ingest connections accepted.\n'
    '# TYPE logtally_connections_total counter\n'
    'logtally_connections_total 2.0\n'
    '# HELP logtally_connections_handshaking Ingest TLS connections in their handshake now.\n'
    '# TYPE logtally_connections_handshaking gauge\n'
    'logtally_connections_handshaking 0.0\n'
    '# HELP logtally_connections_refused_total Ingest connections closed before their first line, by reason.\n'
    '# TYPE logtally_connections_refused_total counter\n'
    'logtally_connections_refused_total{reason="client_not_allowed"} 0.0\n'
    'logtally_connections_refused_total{reason="handshake_failed"} 0.0\n'
    'logtally_connections_refused_total{reason="handshake_timeout"} 0.0\n'
    'logtally_connections_refused_total{reason="max_connections"} 0.0\n'
    'logtally_connections_refused_total{reason="max_connections_per_peer"} 0.0\n'
    '# HELP logtally_connections_idle_closed_total Ingest connections closed for sending nothing within ingest.idle_timeout_s.\n'
    '# TYPE logtally_connections_idle_closed_total counter\n'
    'logtally_connections_idle_closed_total 0.0\n'
    '# HELP logtally_http_connections_closed_total HTTP API connections closed without an answer to a whole request, by reason.\n'
    '# TYPE logtally_http_connections_closed_total counter\n'
    'logtally_http_connections_closed_total{reason="bad_request"} 0.0\n'
    'logtally_http_connections_closed_total{reason="head_too_large"} 0.0\n'
    'logtally_http_connections_closed_total{reason="idle_timeout"} 0.0\n'
    'logtally_http_connections_closed_total{reason="max_connections"} 0.0\n'
    '# HELP logtally_http_responses_total Responses the HTTP API sent, by status class.\n'
    '# TYPE logtally_http_responses_total counter\n'
    'logtally_http_responses_total{status_class="1xx"} 0.0\n'
    'logtally_http_responses_total{status_class="2xx"} 0.0\n'
    'logtally_http_responses_total{status_class="3xx"} 0.0\n'
    'logtally_http_responses_total{status_class="4xx"} 0.0\n'
    'logtally_http_responses_total{status_class="5xx"} 0.0\n'
    '# HELP logtally_batches_in_flight Batches handed to the worker pool and not yet merged.\n'
    '# TYPE logtally_batches_in_flight gauge\n'
    'logtally_batches_in_flight 0.0\n'
    '# HELP logtally_buffered_bytes Bytes framed and waiting for a batch.\n'
    '# TYPE logtally_buffered_bytes gauge\n'
    'logtally_buffered_bytes 0.0\n'
    '# HELP logtally_batch_seconds Time from batch dispatch to merged result.\n'
    '# TYPE logtally_batch_seconds summary\n'
    'logtally_batch_seconds_count <LIVE>\n'
    'logtally_batch_seconds_sum <LIVE>\n'
    '# HELP logtally_pool_workers Worker processes in the pool.\n'
    '# TYPE logtally_pool_workers gauge\n'
    'logtally_pool_workers 2.0\n'
    '# HELP logtally_pool_busy_workers Worker processes running a task now.\n'
    '# TYPE logtally_pool_busy_workers gauge\n'
    'logtally_pool_busy_workers 0.0\n'
    '# HELP logtally_subscribers Connected subscribers.\n'
    '# TYPE logtally_subscribers gauge\n'
    'logtally_subscribers 0.0\n'
    '# HELP logtally_subscriber_messages_dropped_total Messages dropped to lagging subscribers.\n'
    '# TYPE logtally_subscriber_messages_dropped_total counter\n'
    'logtally_subscriber_messages_dropped_total 0.0\n'
    '# HELP logtally_jobs Prime jobs by state.\n'
    '# TYPE logtally_jobs gauge\n'
    'logtally_jobs{state="cancelled"} 0.0\n'
    'logtally_jobs{state="done"} 0.0\n'
    'logtally_jobs{state="failed"} 0.0\n'
    'logtally_jobs{state="running"} 0.0\n'
    '# HELP logtally_udp_datagrams_total Datagrams read from UDP ingest sockets.\n'
    '# TYPE logtally_udp_datagrams_total counter\n'
    'logtally_udp_datagrams_total 0.0\n'
    '# HELP logtally_udp_kernel_drops_total Datagrams the kernel dropped on UDP ingest sockets (receive buffer full).\n'
    '# TYPE logtally_udp_kernel_drops_total counter\n'
    'logtally_udp_kernel_drops_total 0.0\n'
    '# HELP logtally_periodic_job_failures_total Periodic jobs that raised, by job.\n'
    '# TYPE logtally_periodic_job_failures_total counter\n'
    '# HELP logtally_distinct_values Distinct values seen since start, by field (approximate: HLL estimate, relative standard error 0.0162).\n'
    '# TYPE logtally_distinct_values gauge\n'
    'logtally_distinct_values{field="host"} 1.0\n'
    'logtally_distinct_values{field="ip"} 0.0\n'
    'logtally_distinct_values{field="path"} 0.0\n'
    'logtally_distinct_values{field="service"} 1.0\n'
    'logtally_distinct_values{field="unique_visitors"} 0.0\n'
    'logtally_distinct_values{field="user_agent"} 0.0\n'
    '# HELP logtally_top_approximate 1 when the since-start top-N counts of a field are approximate (past the exact-count budget).\n'
    '# TYPE logtally_top_approximate gauge\n'
    'logtally_top_approximate{field="error"} 0.0\n'
    'logtally_top_approximate{field="host"} 0.0\n'
    'logtally_top_approximate{field="ip"} 0.0\n'
    'logtally_top_approximate{field="path"} 0.0\n'
    'logtally_top_approximate{field="service"} 0.0\n'
    'logtally_top_approximate{field="suspicious_ip"} 0.0\n'
    'logtally_top_approximate{field="user_agent"} 0.0\n'
    '# HELP logtally_top_max_error How far a since-start top-N count of a field may be off: upper - lower bound (0 = exact).\n'
    '# TYPE logtally_top_max_error gauge\n'
    'logtally_top_max_error{field="error"} 0.0\n'
    'logtally_top_max_error{field="host"} 0.0\n'
    'logtally_top_max_error{field="ip"} 0.0\n'
    'logtally_top_max_error{field="path"} 0.0\n'
    'logtally_top_max_error{field="service"} 0.0\n'
    'logtally_top_max_error{field="suspicious_ip"} 0.0\n'
    'logtally_top_max_error{field="user_agent"} 0.0\n'
    '# HELP logtally_alert_notifications_total Alert notifications by route and outcome: sent, failed (after the last retry), dropped (queue full).\n'
    '# TYPE logtally_alert_notifications_total counter\n'
    '# HELP logtally_alert_retries_total Alert delivery tries after the first, by route.\n'
    '# TYPE logtally_alert_retries_total counter\n'
    '# HELP logtally_alert_queue Alert notifications waiting for delivery, by route.\n'
    '# TYPE logtally_alert_queue gauge\n'
    '# HELP logtally_alerts_active Alerts firing now, by route.\n'
    '# TYPE logtally_alerts_active gauge\n'
    '# HELP logtally_uptime_seconds Seconds since the daemon started.\n'
    '# TYPE logtally_uptime_seconds gauge\n'
    'logtally_uptime_seconds <LIVE>\n'
    '# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n'
    '# TYPE process_virtual_memory_bytes gauge\n'
    'process_virtual_memory_bytes <LIVE>\n'
    '# HELP process_resident_memory_bytes Resident memory size in bytes.\n'
    '# TYPE process_resident_memory_bytes gauge\n'
    'process_resident_memory_bytes <LIVE>\n'
    '# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n'
    '# TYPE process_start_time_seconds gauge\n'
    'process_start_time_seconds <LIVE>\n'
    '# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n'
    '# TYPE process_cpu_seconds_total counter\n'
    'process_cpu_seconds_total <LIVE>\n'
    '# HELP process_open_fds Number of open file descriptors.\n'
    '# TYPE process_open_fds gauge\n'
    'process_open_fds <LIVE>\n'
    '# HELP process_max_fds Maximum number of open file descriptors.\n'
    '# TYPE process_max_fds gauge\n'
    'process_max_fds <LIVE>\n'
    '# HELP python_info Python platform information\n'
    '# TYPE python_info gauge\n'
    'python_info{<LIVE>} 1.0\n'
)

# `<*>`: what TOP answers in the README, byte for byte.
TOP_ERROR_5 = (
    b'{"field":"error","window":"all","n":5,"top":[{"value":"Database connection failed for user <*>",'
    b'"count":2,"share":1.0,"example":"Database connection failed for user 42"}]}\n'
)
RECORD = (
    b'{"type":"record","format":"rfc5424","ts":"2025-01-30T12:00:00Z","host":"web-1","service":"api",'
    b'"level":"ERROR","severity":3,"facility":1,"procid":"42","msgid":null,"structured_data":null,'
    b'"message":"Database connection failed for user 42"}\n'
)


@pytest.fixture
def daemon(start_server: Any) -> ServerProcess:
    server = start_server(CONFIG)
    send_tcp(server.address("tcp"), LINE)
    send_tcp(server.address("tcp"), LINE)
    assert server.wait_received(2)["received"] == 2
    return server


def test_stats_and_stats_5m(daemon: ServerProcess) -> None:
    for command, window, window_s in (("STATS", "all", None), ("STATS 5m", "5m", 300)):
        raw = nc(daemon, command)
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1
        assert_like(json.loads(raw), stats_answer(window, window_s), command)


def test_top_and_events(daemon: ServerProcess) -> None:
    assert nc(daemon, "TOP error 5") == TOP_ERROR_5
    assert nc(daemon, "EVENTS 10") == b'{"events":[]}\n'


def test_metrics(daemon: ServerProcess) -> None:
    raw = nc(daemon, "METRICS")
    assert raw.startswith(b'{"metrics":"# HELP ') and raw.endswith(b'"}\n')
    text = json.loads(raw)["metrics"]
    pattern = "".join(r"\S+" if part == "<LIVE>" else re.escape(part) for part in re.split(r"(<LIVE>)", METRICS))
    assert re.fullmatch(pattern, text), text


def test_subscribe_by_hand(daemon: ServerProcess) -> None:
    """`nc 127.0.0.1 5141`, then typing the README's SUBSCRIBE and AUTH lines."""
    with socket.create_connection(daemon.address("control"), timeout=30) as sock:
        stream = sock.makefile("rb")
        sock.sendall(b"SUBSCRIBE anomalies\n")
        assert stream.readline() == b'{"subscribed":["anomalies"]}\n'
        sock.sendall(b"SUBSCRIBE tail level>=error service=api\n")
        assert stream.readline() == (
            b'{"error":"auth required: send AUTH <token> first, or use the control Unix socket"}\n')
        sock.sendall(f"AUTH {daemon.token}\n".encode())
        assert stream.readline() == b'{"auth":"ok"}\n'
        sock.sendall(b"SUBSCRIBE tail level>=error service=api\n")
        assert stream.readline() == b'{"subscribed":["anomalies","tail"]}\n'
        send_tcp(daemon.address("tcp"), LINE)
        assert stream.readline() == RECORD


def test_prime_count_and_isprime(daemon: ServerProcess) -> None:
    authorized, raw = nc(daemon, f"AUTH {daemon.token}\nPRIME COUNT 1 1e6").split(b"\n", 1)
    assert authorized == b'{"auth":"ok"}'
    answer = json.loads(raw)
    assert_like(answer, {
        "id": LIVE, "kind": "count", "lo": 1, "hi": 1000000, "count": 78498, "first": 2, "last": 999983,
        "largest_gap": 114, "largest_gap_after": 492113, "twin_pairs": 8169, "elapsed_s": LIVE,
        "numbers_per_s": LIVE, "segments": 1, "workers": 1,
    })
    raw = nc(daemon, "ISPRIME 170141183460469231731687303715884105727")
    assert raw.startswith(
        b'{"n":170141183460469231731687303715884105727,"prime":true,"certainty":"probable","method":"bpsw",'
        b'"digits":39,"elapsed_s":'
    ) and raw.endswith(b"}\n") and raw.count(b"\n") == 1
