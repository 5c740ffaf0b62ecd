"""Issue 5 acceptance: anomaly events from a real server over real sockets, and the same events
from `logtallyd analyze --events` replaying the same file.

One generated file holds five minutes of steady traffic with one scenario after another (an
error burst, brute-force sequences that must and must not match, a scanning IP, a new error
template, a latency jump, and a flood in the file's last seconds); a second file is the steady
traffic alone. Both are streamed to servers (one subscriber on `SUBSCRIBE anomalies`) and
replayed by `analyze`. After input stops, each server's event clock runs on at wall pace (see
`logtallyd.detect.driver`), so the config uses small windows and a short lateness to finish quickly.
"""
from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT, ServerProcess, send_tcp

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
LATENESS_S = 3
INTERVAL_S = 5
CONFIG = f"""
[pipeline]
workers = 2
event_lateness_s = {LATENESS_S}
batch_lines = 500

[detect.spike]
window_s = 5
threshold = 20
resolve_below = 5
overall_threshold = 40
overall_resolve_below = 5

[detect.zscore]
interval_s = {INTERVAL_S}
window = 20
min_samples = 10
k = 5.0

[detect.suspicious]
window_s = 5
min_bad = 40
min_requests = 20
share = 0.8

[detect.newtemplate]
warmup_s = 30
"""
LENGTH_S = 300
BRUTE_IP = "203.0.113.7"
SCANNER_IP = "198.51.100.66"


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{round(ts % 1 * 1000):03d}Z"


def app_line(ts: float, level: str, service: str, message: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + f",{round(ts % 1 * 1000):03d}"
    return f"{stamp} {level} [{service}] {message}"


def sshd_line(ts: int, text: str, ip: str) -> str:
    """/var/log/auth.log as sshd writes it (RFC 3164 without PRI)."""
    tm = time.gmtime(ts)
    stamp = f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {time.strftime('%H:%M:%S', tm)}"
    return f"{stamp} bastion sshd[{4000 + ts % 1000}]: {text} password for root from {ip} port {ts % 60000} ssh2"


def access_line(ts: int, ip: str, path: str, status: int) -> str:
    tm = time.gmtime(ts)
    clf = f"{tm.tm_mday:02d}/{MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:{time.strftime('%H:%M:%S', tm)} +0000"
    return f'{ip} - - [{clf}] "GET {path} HTTP/1.1" {status} 153 "-" "sqlmap/1.7"'


def steady(t0: int, s: int, rng: random.Random, api_latency: float = 100.0) -> list[tuple[float, str]]:
    """One second of background traffic: 10 API requests (JSON), 4-6 web lines, and a
    recurring checkout error (its template is learned during the warm-up)."""
    out: list[tuple[float, str]] = []
    for i in range(10):
        ts = t0 + s + i / 10
        out.append((ts, json.dumps({
            "ts": ts, "level": "info", "service": "api", "ip": f"10.1.0.{rng.randrange(1, 31)}",
            "method": "GET", "path": f"/api/items/{rng.randrange(100)}", "status": 200,
            "latency_ms": round(api_latency + rng.uniform(-5, 5), 3), "message": "served",
        })))
    for i in range(rng.randint(4, 6)):
        ts = t0 + s + 0.05 + i / 10
        out.append((ts, app_line(ts, "INFO", "web", f"rendered page {rng.randrange(1000)} in {rng.randrange(5, 50)} ms")))
    if s % 30 == 10:
        ts = t0 + s + 0.5
        out.append((ts, app_line(ts, "ERROR", "checkout", f"Payment gateway returned 502 for order {rng.randrange(10**6)}")))
    return out


def scenario_lines(t0: int) -> list[str]:
    rng = random.Random(5)
    lines: list[tuple[float, str]] = []
    for s in range(LENGTH_S):
        lines += steady(t0, s, rng, api_latency=400.0 if 240 <= s < 255 else 100.0)
        if s == 115 or s == 116:  # error burst: 30 errors of a known template in two seconds
            for i in range(15):
                ts = t0 + s + 0.02 + i / 20
                lines.append((ts, app_line(ts, "ERROR", "checkout", f"Payment gateway returned 502 for order {i}")))
        if 170 <= s < 175:  # a scanner: 12 requests a second, all 404
            lines += [(t0 + s, access_line(t0 + s, SCANNER_IP, f"/wp-admin/{i}.php", 404)) for i in range(12)]
        if s == 50:  # a sender with a bad clock: must not move the event clock years ahead
            lines.append((t0 + s + 0.9, json.dumps({"ts": t0 + 10**8, "level": "error", "service": "api",
                                                     "message": "clock says 2029"})))
        if s == 200:  # a template never seen before
            lines.append((t0 + s + 0.3, f"<130>1 {iso(t0 + s + 0.3)} nas-1 storage - - - Kernel panic in module zfs at 0xdeadbeef"))
        if s >= LENGTH_S - INTERVAL_S:  # the last interval: web floods (35 more lines a second)
            lines += [(t0 + s + 0.5 + i / 100, app_line(t0 + s + 0.5 + i / 100, "INFO", "web", "retry"))
                      for i in range(35)]
    # Brute force, one IP: three failures then a success, a second apart: a match.
    brute = [(120, "Failed", BRUTE_IP), (121, "Failed", BRUTE_IP), (122, "Failed", BRUTE_IP),
             (123, "Accepted", BRUTE_IP)]
    # The same lines spread over four IPs: no match.
    spread = [(130, "Failed", "198.51.100.1"), (131, "Failed", "198.51.100.2"),
              (132, "Failed", "198.51.100.3"), (133, "Accepted", "198.51.100.4")]
    # The same steps out of order, each from its own IP: no match.
    disorder = [(140, "Accepted", "192.0.2.50"), (141, "Failed", "192.0.2.50"),
                (142, "Failed", "192.0.2.50"), (143, "Failed", "192.0.2.50"),
                (145, "Failed", "192.0.2.51"), (146, "Failed", "192.0.2.51"),
                (147, "Accepted", "192.0.2.51"), (148, "Failed", "192.0.2.51")]
    # In order, but the success comes after more than max_gap_s (60 s): no match.
    slow = [(150, "Failed", "192.0.2.77"), (151, "Failed", "192.0.2.77"), (152, "Failed", "192.0.2.77"),
            (213, "Accepted", "192.0.2.77")]
    for s, text, ip in brute + spread + disorder + slow:
        lines.append((t0 + s + 0.7, sshd_line(t0 + s, text, ip)))
    lines.sort(key=lambda pair: pair[0])
    return [line for _, line in lines]


def steady_lines(t0: int) -> list[str]:
    rng = random.Random(6)
    return [line for s in range(LENGTH_S) for _, line in steady(t0, s, rng)]


def analyze_events(path: Path, config: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "logtallyd", "analyze", str(path), "--json", "--events", "--workers", "2",
         "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(out.stdout)["events"]


class Subscriber:
    """`SUBSCRIBE anomalies` on the control port; every event line is collected by a thread."""

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.create_connection(server.address("control"), timeout=60)
        self.file = self.sock.makefile("rb")
        self.sock.sendall(b"SUBSCRIBE anomalies\n")
        assert json.loads(self.file.readline()) == {"subscribed": ["anomalies"]}
        self.events: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.file:
                self.events.append(json.loads(line))
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        self.sock.close()


def pending_seconds(server: ServerProcess) -> int:
    return server.stats()["detect"]["pending_seconds"]


def settle(server: ServerProcess, fed_at: float, expected: list[dict[str, Any]],
           timeout: float = 40.0) -> list[dict[str, Any]]:
    """EVENTS once the server's event clock has run past the end of the input (fed by
    `fed_at`, monotonic) and past every window and interval that could still close."""
    deadline = time.monotonic() + timeout
    while pending_seconds(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    events = server.command("EVENTS 1000")["events"]
    while events != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        events = server.command("EVENTS 1000")["events"]
    # The clock runs at wall pace from the last data: past the lateness, the windows and the
    # last z-score interval (5 s each), plus a margin; nothing may come after that.
    time.sleep(max(0.0, fed_at + LATENESS_S + INTERVAL_S + 3 - time.monotonic()))
    return server.command("EVENTS 1000")["events"]


class Run:
    def __init__(self) -> None:
        self.t0 = 0
        self.analyzed: list[dict[str, Any]] = []
        self.streamed: list[dict[str, Any]] = []
        self.subscribed: list[dict[str, Any]] = []
        self.steady_analyzed: list[dict[str, Any]] = []
        self.steady_streamed: list[dict[str, Any]] = []
        self.detect_stats: dict[str, Any] = {}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("events")
    result = Run()
    result.t0 = t0 = (int(time.time()) - 7200) // 60 * 60
    scenario = root / "scenario.log"
    scenario.write_text("\n".join(scenario_lines(t0)) + "\n")
    calm = root / "steady.log"
    calm.write_text("\n".join(steady_lines(t0)) + "\n")
    (root / "config.toml").write_text(CONFIG)
    servers: list[ServerProcess] = []
    try:
        for name in ("scenario", "steady"):
            (root / name).mkdir()
            servers.append(ServerProcess(root / name, CONFIG))
        main, quiet = servers
        subscriber = Subscriber(main)
        fed_at: list[float] = []
        for server, path in ((main, scenario), (quiet, calm)):
            data = path.read_bytes()
            send_tcp(server.address("tcp"), data)
            server.wait_received(data.count(b"\n"))
            fed_at.append(time.monotonic())
        # While the servers' event clocks run on, replay both files in batch.
        result.analyzed = analyze_events(scenario, root / "config.toml")
        result.steady_analyzed = analyze_events(calm, root / "config.toml")
        result.streamed = settle(main, fed_at[0], result.analyzed)
        result.steady_streamed = settle(quiet, fed_at[1], result.steady_analyzed)
        result.subscribed = list(subscriber.events)
        result.detect_stats = main.stats()["detect"]
        subscriber.close()
    finally:
        for server in servers:
            server.stop()
    yield result


def of(events: list[dict[str, Any]], detector: str) -> list[dict[str, Any]]:
    return [e for e in events if e["detector"] == detector]


def test_error_burst_gives_exactly_one_spike_and_one_resolved(run: Run) -> None:
    for events in (run.streamed, run.analyzed):
        spikes = of(events, "spike")
        assert [(e["type"], e["key"]) for e in spikes] == [("error_spike", "checkout"), ("resolved", "checkout")]
        spike, resolved = spikes
        # Rising edge in the burst's second second (15 + 15 errors, threshold 20) ...
        assert spike["ts"] == run.t0 + 116 and spike["count"] == 30 and spike["window_s"] == 5
        assert spike["top_templates"] == [{"template": "Payment gateway returned <*> for order <*>", "count": 30}]
        # ... and resolved once the burst has left the 5 s window (hysteresis: below 5).
        assert resolved["of"] == "error_spike" and resolved["started"] == spike["ts"]
        assert resolved["ts"] == run.t0 + 121 and resolved["count"] == 0 and resolved["peak"] == 30


def test_brute_force_from_one_ip_matches_and_spread_or_disordered_lines_do_not(run: Run) -> None:
    for events in (run.streamed, run.analyzed):
        patterns = of(events, "pattern")
        assert [(e["key"], e["pattern"], e["field"]) for e in patterns] == [(BRUTE_IP, "ssh_brute_force", "ip")]
        event = patterns[0]
        assert event["timestamps"] == [run.t0 + s for s in (120, 121, 122, 123)]
        assert event["ts"] == run.t0 + 123
        assert [line.split(" password")[0] for line in event["lines"]] == ["Failed"] * 3 + ["Accepted"]


def test_scanning_ip_is_suspicious_then_resolved(run: Run) -> None:
    for events in (run.streamed, run.analyzed):
        found = of(events, "suspicious")
        assert [(e["type"], e["key"]) for e in found] == [("suspicious_ip", SCANNER_IP), ("resolved", SCANNER_IP)]
        # Two seconds in: 24 requests, all 404 (share rule: >= 20 requests, >= 80 % bad).
        assert (found[0]["ts"], found[0]["reason"], found[0]["bad"], found[0]["total"]) == (run.t0 + 171, "share", 24, 24)


def test_new_error_template_after_warmup(run: Run) -> None:
    for events in (run.streamed, run.analyzed):
        found = of(events, "newtemplate")
        assert [(e["key"], e["template"]) for e in found] == [("storage", "Kernel panic in module zfs at <*>")]
        assert found[0]["ts"] == pytest.approx(run.t0 + 200.3) and found[0]["count"] == 1


def test_latency_jump_and_last_second_flood_give_zscore_events(run: Run) -> None:
    for events in (run.streamed, run.analyzed):
        found = of(events, "zscore")
        assert [(e["key"], e["metric"], e["ts"]) for e in found] == [
            ("api", "p95_latency_ms", run.t0 + 240),  # the first interval of the jump
            ("web", "lines_per_s", run.t0 + LENGTH_S - INTERVAL_S),  # the file's last interval
        ]
        jump, flood = found
        assert jump["value"] > 390 and 95 < jump["mean"] < 110 and jump["z"] > 5
        assert flood["value"] > 35 and 4 < flood["mean"] < 6 and flood["z"] > 5


def test_replay_lists_the_same_events_as_streaming(run: Run) -> None:
    assert len(run.analyzed) == 8
    assert run.streamed == run.analyzed
    assert run.subscribed == run.analyzed


def test_a_line_from_the_future_is_counted_and_does_not_stop_detection(run: Run) -> None:
    # Every scenario after it fired (above); the line itself was counted and dropped.
    assert run.detect_stats["future_lines"] == 1
    assert run.detect_stats.get("late_lines", 0) == 0


def test_steady_file_gives_no_events(run: Run) -> None:
    assert run.steady_analyzed == []
    assert run.steady_streamed == []

