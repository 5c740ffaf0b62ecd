"""`/metrics` against real daemons: counters start at zero in each process (a restart shows as a new
`process_start_time_seconds`) and never go back within one, whatever a snapshot or the archive
restores into STATS; and a real Prometheus scrapes it."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess, require_tool, send_tcp

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: ServerProcess, path: str = "/metrics") -> Samples:
    host, port = server.address("http")
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def counters(samples: Samples) -> Samples:
    return {key: value for key, value in samples.items() if key[0].endswith("_total")}


def one(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def lines(n: int, severity: int, day: str = "2025-01-30") -> bytes:
    """n RFC 5424 lines of facility 1 at `severity` (3 = ERROR, 6 = INFO), stamped on `day`."""
    return b"".join(f"<{8 + severity}>1 {day}T12:00:00Z web-1 api - - - line {i}\n".encode() for i in range(n))


def config(tmp_path: Path) -> str:
    # No periodic snapshot: the one written at start, then the archive replays the rest after a kill -9.
    return (f'[state]\ndirectory = "{tmp_path / "state"}"\nsnapshot_interval_s = 3600\n'
            f'[archive]\nenabled = true\ndirectory = "{tmp_path / "archive"}"\nfsync = "batch"\n'
            "[stats.windows]\n1m = 60\n")


def test_counters_restart_at_zero_and_never_go_back(start_server: Any, tmp_path: Path) -> None:
    first = start_server(config(tmp_path))
    send_tcp(first.address("tcp"), lines(200, 3) + lines(100, 6) + b"\n" * 5)
    assert first.wait_received(305)["received"] == 305
    before = scrape(first)
    assert one(before, "logtally_lines_received_total") == 305 and one(before, "logtally_lines_restored") == 0
    assert one(before, "logtally_lines_by_level_total", level="ERROR") == 200
    assert one(before, "logtally_lines_rejected_total", reason="empty") == 5
    first.stop(signal.SIGKILL)

    # The archive replay brings STATS back to 305; the new process has counted nothing yet.
    second = start_server(config(tmp_path))
    assert second.wait_log("archive_replayed")["lines"] == 305
    assert second.stats()["received"] == 305
    after = scrape(second)
    assert one(after, "process_start_time_seconds") > one(before, "process_start_time_seconds")
    assert one(after, "logtally_lines_restored") == 305
    lines_families = {key: value for key, value in counters(after).items()
                      if key[0].startswith(("logtally_lines_", "logtally_bytes_", "logtally_access_log_"))}
    assert lines_families and set(lines_families.values()) == {0}  # every known label value, at 0

    # Within the process every counter only goes up, scrape after scrape.
    previous = counters(after)
    chunks = [lines(50, 3), lines(30, 6), lines(1, 6, day="2099-01-01"), lines(1, 6, day="2025-01-29")]
    for chunk in chunks:
        sent = second.stats()["received"]
        send_tcp(second.address("tcp"), chunk)
        second.wait_received(sent + chunk.count(b"\n"))
        now = counters(scrape(second))
        assert set(now) >= set(previous)
        assert [key for key, value in previous.items() if now[key] < value] == []
        previous = now
    final, stats = scrape(second), second.stats()
    assert one(final, "logtally_lines_received_total") == 82
    assert one(final, "logtally_lines_restored") + one(final, "logtally_lines_received_total") == stats["received"]
    assert one(final, "logtally_lines_by_level_total", level="ERROR") == 50
    assert one(final, "logtally_lines_by_level_total", level="INFO") == 32
    assert one(final, "logtally_lines_future_total") == 1 == stats["future"]
    assert one(final, "logtally_lines_late_total") == 1 == stats["late"]
    # The HTTP API's own answers, by class: the scrapes so far, and a 404 now.
    answered = one(final, "logtally_http_responses_total", status_class="2xx")
    assert answered >= 1 + len(chunks)
    with pytest.raises(urllib.error.HTTPError):
        scrape(second, "/nowhere")
    again = scrape(second)
    assert one(again, "logtally_http_responses_total", status_class="4xx") == 1
    assert one(again, "logtally_http_responses_total", status_class="2xx") == answered + 1
    assert again[("logtally_http_responses_total", (("status_class", "2xx"),))] == \
        second.stats()["http_server"]["responses_by_class"]["2xx"] - 1  # STATS asked after: this scrape's own

    # An orderly stop and start: the snapshot restores 387, the counters start again at 0.
    second.stop()
    third = start_server(config(tmp_path))
    assert third.stats()["received"] == 387
    restarted = scrape(third)
    assert one(restarted, "logtally_lines_restored") == 387
    assert one(restarted, "logtally_lines_received_total") == 0
    assert one(restarted, "process_start_time_seconds") > one(final, "process_start_time_seconds")


def test_metrics_start_up_says_whether_the_api_is_authenticated(start_server: Any) -> None:
    server = start_server()
    entry = server.wait_log("http_auth")
    assert (entry["auth"], entry["authenticated"]) == ("loopback", False)
    assert entry["address"] == server.addresses["http"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success"
    return answer["data"]["result"]


@pytest.mark.slow
def test_a_real_prometheus_scrapes_it(start_server: Any, tmp_path: Path) -> None:
    binary = require_tool("prometheus", "/usr/bin/prometheus")
    server = start_server()
    send_tcp(server.address("tcp"), lines(120, 3) + lines(80, 6) + b"\n\n")
    received = server.wait_received(202)["received"]
    assert received == 202
    host, port = server.address("http")
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: logtally\n    static_configs:\n      - targets: ['{host}:{port}']\n")
    web = f"127.0.0.1:{_free_port()}"
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address={web}"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{web}"
    try:
        deadline = time.monotonic() + 120
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                seen = {"up": _query(base, 'up{job="logtally"}'),
                        "received": _query(base, "logtally_lines_received_total"),
                        "errors": _query(base, 'logtally_lines_by_level_total{level="ERROR"}'),
                        "build": _query(base, "logtally_build_info")}
            except (urllib.error.URLError, ConnectionError):
                seen = {}
            if seen and all(seen.values()) and float(seen["received"][0]["value"][1]) == received:
                break
            time.sleep(0.5)
        assert seen, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert float(seen["up"][0]["value"][1]) == 1
        assert float(seen["received"][0]["value"][1]) == received == server.stats()["received"]
        assert float(seen["errors"][0]["value"][1]) == 120
        assert seen["build"][0]["metric"]["python"] and seen["build"][0]["metric"]["version"]
        # the zero-valued families are series Prometheus has, not absent ones
        oversize = _query(base, 'logtally_lines_rejected_total{reason="oversize"}')
        assert [float(r["value"][1]) for r in oversize] == [0]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
