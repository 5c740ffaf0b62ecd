"""The `watch` screen as a pure function of a snapshot and a terminal size: what comes first, what
fits, and the sparkline."""
from __future__ import annotations

from logtally.dashboard import Snapshot, screen, sections, sparkline

REPORT = {
    "received": 12345, "bytes": 70355291824, "errors": 600, "error_rate": 0.0486,
    "by_level": {"INFO": 11745, "ERROR": 600}, "by_service": {f"svc{i}": 100 + i for i in range(8)},
    "by_host": {"web-1": 12345}, "by_format": {"rfc5424": 12345},
    "http": {"by_class": {"5xx": 2, "2xx": 10},
             "latency_ms": {"count": 12, "p50": 5.0, "p95": 9.5, "p99": 9.9, "max": 10.0}},
}
TOTALS = {**REPORT, "uptime_s": 3725, "connections": {"open": 2}}
SNAPSHOT = Snapshot("127.0.0.1:5141", "all", REPORT, TOTALS, [], {}, [1.0, 4.0, 2.0], 1738238400.0)
KEY_LINES = [
    "logtally 127.0.0.1:5141  window all  up 1h 02m  2025-01-30T12:00:00Z  q quits".ljust(80),
    "lines/s 2.0  ▃█▅  received 12,345  bytes 65.5 GiB",
    "errors 600  error rate 4.86%  p95 9.5 ms  connections 2  anomalies 0",
    "─" * 80,
]


def plain(width: int, height: int, snapshot: Snapshot = SNAPSHOT) -> list[str]:
    return [line.plain for line in screen(snapshot, width, height).renderables]


def test_key_figures_come_first_whatever_the_height() -> None:
    for height in (4, 12, 24, 60):
        assert plain(80, height)[:4] == KEY_LINES


def test_sections_fill_the_height_and_stop_there() -> None:
    assert [s.title for s in sections(SNAPSHOT)] == [
        "levels", "status classes", "latency (ms)", "services", "hosts", "formats"]
    # Severity order for levels, class order for statuses; two sections side by side at 80 columns.
    assert plain(80, 12)[4:] == [
        "levels                                  status classes",
        "ERROR                              600  2xx                                 10",
        "INFO                            11,745  5xx                                  2",
        "",
        "latency (ms)                            services",
        "p50                                5.0  svc7                               107",
        "p95                                9.5  svc6                               106",
        "p99                                9.9  svc5                               105",
    ]
    tall = plain(80, 24)
    assert len(tall) == 17 and tall[-2:] == [
        "hosts                                   formats",
        "web-1                           12,345  rfc5424                         12,345",
    ]
    assert plain(80, 60) == tall  # nothing more to show
    # Too short for a section: the key lines alone.
    assert plain(80, 5) == KEY_LINES
    # 120 columns hold three sections side by side.
    assert plain(120, 24)[4].split() == ["levels", "status", "classes", "latency", "(ms)"]


def test_anomalies_count_those_in_the_window() -> None:
    report = {**REPORT, "window_s": 60, "anchor": 1000}
    events = [{"type": "spike", "key": "errors", "ts": 930.0}, {"type": "pattern", "key": "10.0.0.9", "ts": 990.0}]
    snapshot = Snapshot("c", "1m", report, TOTALS, events, {}, [], 1000.0)
    lines = plain(80, 40, snapshot)
    assert lines[1] == "lines/s -  received 12,345  bytes 65.5 GiB"  # no rate before a second refresh
    assert lines[2].endswith("  anomalies 1")
    # Only the event inside the window is listed, with its time of day (UTC).
    assert lines[8:10] == [
        "latency (ms)                            anomalies (newest first)",
        "p50                                5.0  pattern 10.0.0.9             00:16:30Z",
    ]


def test_sparkline_scales_to_the_maximum_and_keeps_the_newest() -> None:
    assert sparkline([], 10) == ""
    assert sparkline([0.0, 0.0], 10) == "▁▁"
    assert sparkline([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 8) == "▁▂▃▄▅▆▇█"
    assert sparkline([100.0, 1.0, 7.0], 2) == "▂█"
