"""Alert routes end to end: a real daemon, error bursts sent over TCP, and real receivers on
loopback (an HTTP server written here, Alertmanager itself, an exec'd command)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.conftest import ServerProcess, metric, require_tool, send_tcp

# Small windows so a burst fires and resolves within seconds of wall time (the event clock runs
# on at wall pace once input stops).
DETECT = """
[pipeline]
event_lateness_s = 1

[detect.spike]
window_s = 2
threshold = 20
resolve_below = 5
overall_threshold = 100000
overall_resolve_below = 5

[detect.zscore]
enabled = false

[detect.newtemplate]
enabled = false
"""


def burst(server: ServerProcess, services: list[str], n: int = 30) -> None:
    """`n` ERROR lines for each service, stamped now: one error_spike per service."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f",{int(now % 1 * 1000):03d}"
    lines = [f"{stamp} ERROR [{svc}] request failed id={i}\n" for svc in services for i in range(n)]
    before = server.stats()["received"]
    send_tcp(server.address("tcp"), "".join(lines).encode())
    server.wait_received(before + len(lines))


class Receiver:
    """An HTTP receiver on an ephemeral loopback port: records each POST, answers from `statuses`
    (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.cond:
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": json.loads(body), "status": status})
                    outer.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies answered with 200."""
        with self.cond:
            return [r["body"] for r in self.requests if r["status"] == 200]

    def wait(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len([r for r in self.requests if r["status"] == 200]) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"receiver got {self.requests}"
                self.cond.wait(left)
        return self.delivered()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int] | None = None) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


def wait_routes(server: ServerProcess, done: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = server.command("ALERTS")
        if done(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_one_alert_per_burst_and_its_resolution_with_the_token_from_the_environment(
        start_server: Callable[..., ServerProcess], receiver: Callable[..., Receiver]) -> None:
    rx = receiver()
    token = "s3cr3t-" + os.urandom(8).hex()
    server = start_server(DETECT + f"""
[[alerts]]
name = "hook"
kind = "webhook"
url = "{rx.url}"
token_env = "LOGTALLY_TEST_ALERT_TOKEN"
""", env={"LOGTALLY_TEST_ALERT_TOKEN": token})
    burst(server, ["api"])
    first = rx.wait(1)
    assert [(b["status"], b["labels"]["service"]) for b in first] == [("firing", "api")]
    firing = wait_routes(server, lambda a: bool(a["alerts"]))
    assert [a["group_key"] for a in firing["alerts"]] == ["kind=error_spike,key=api"]
    assert [b["status"] for b in rx.wait(2)] == ["firing", "resolved"]
    burst(server, ["api"])
    bodies = rx.wait(4)
    assert [b["status"] for b in bodies] == ["firing", "resolved", "firing", "resolved"]
    assert {(b["schema"], b["labels"]["kind"], b["group_key"]) for b in bodies} == {
        ("logtally.alert/1", "error_spike", "kind=error_spike,key=api")}
    assert {r["headers"]["Authorization"] for r in rx.requests} == {f"Bearer {token}"}
    answer = wait_routes(server, lambda a: a["routes"]["hook"]["sent"] == 4)
    route = answer["routes"]["hook"]
    assert answer["alerts"] == []
    assert (route["notifications"], route["sent"], route["retried"], route["failed"], route["dropped"]) == (4, 4, 0, 0, 0)
    assert route["target"] == rx.url
    metrics = server.command("METRICS")["metrics"]
    assert metric(metrics, "logtally_alert_notifications_total", route="hook", outcome="sent") == 4
    # `logtally alerts` shows the same counts.
    cli = [sys.executable, "-m", "logtally", "--control", server.addresses["control"], "alerts"]
    table = subprocess.run(cli, capture_output=True, text=True, timeout=30, check=True).stdout
    assert table.splitlines()[:2] == ["firing: 0", "(none)"]
    assert [line.split()[:7] for line in table.splitlines()[-1:]] == [["hook", "webhook", rx.url, "4", "0", "0", "0"]]
    as_json = json.loads(subprocess.run([*cli[:-1], "--json", "alerts"], capture_output=True, text=True,
                                        timeout=30, check=True).stdout)
    assert as_json["routes"]["hook"]["sent"] == 4
    # The token is in no answer and no log line.
    answers = [json.dumps(server.command(c)) for c in ("ALERTS", "STATS", "METRICS", "EVENTS", "HELP")]
    answers.append(table)
    server.stop()
    assert not [line for line in server.raw_output + answers if token in line]


def test_a_receiver_failing_three_times_gets_the_alert_on_the_fourth_try(
        start_server: Callable[..., ServerProcess], receiver: Callable[..., Receiver]) -> None:
    rx = receiver([500, 500, 500])
    server = start_server(DETECT + f"""
[[alerts]]
name = "flaky"
kind = "webhook"
url = "{rx.url}"
send_resolved = false
backoff_initial_s = 0.05
backoff_max_s = 0.2
""")
    burst(server, ["api"])
    assert [b["status"] for b in rx.wait(1)] == ["firing"]
    assert [r["status"] for r in rx.requests] == [500, 500, 500, 200]
    route = wait_routes(server, lambda a: a["routes"]["flaky"]["sent"] == 1)["routes"]["flaky"]
    assert (route["sent"], route["retried"], route["failed"], route["errors"]) == (1, 3, 0, {"http_status": 3})
    metrics = server.command("METRICS")["metrics"]
    assert metric(metrics, "logtally_alert_retries_total", route="flaky") == 3
    tries = [e for e in server.logs if e.get("event") == "alert_try_failed"]
    assert [(e["route"], e["reason"], e["attempt"], e["retry"]) for e in tries] == [
        ("flaky", "http_status", n, True) for n in (1, 2, 3)]


def test_a_route_down_for_the_whole_test_holds_its_queue_bound_and_counts_drops(
        start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = tmp_path / "dead.jsonl"
    server = start_server(DETECT + f"""
[[alerts]]
name = "down"
kind = "webhook"
url = "http://127.0.0.1:{port}/"
queue_size = 3
send_resolved = false
max_retries = 100
backoff_initial_s = 60
backoff_max_s = 60
dead_letter = "{dead}"
""")
    services = [f"svc{i}" for i in range(10)]
    burst(server, services)
    answer = wait_routes(server, lambda a: a["routes"]["down"]["notifications"] == 10
                         and a["routes"]["down"]["dead_letters"] == a["routes"]["down"]["dropped"])
    route = answer["routes"]["down"]
    # One in flight (waiting 60 s to retry), the queue at its bound or below, the oldest dropped.
    assert route["in_flight"] == 1 and route["queued"] <= 3 and route["sent"] == route["failed"] == 0
    assert route["dropped"] == 10 - 1 - route["queued"] >= 6
    assert route["errors"] == {"connect": 1} and route["retried"] == 1
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(d["reason"], d["status"]) for d in letters] == [("dropped", "firing")] * route["dropped"]
    # Every service's alert is somewhere: delivered to nobody, but queued, in flight or dead-lettered.
    assert len({d["labels"]["service"] for d in letters}) == route["dropped"]
    assert len(answer["alerts"]) == 10
    metrics = server.command("METRICS")["metrics"]
    assert metric(metrics, "logtally_alert_notifications_total", route="down", outcome="dropped") == route["dropped"]
    assert metric(metrics, "logtally_alert_queue", route="down") == route["queued"]
    # Ingestion goes on while the route is down.
    burst(server, ["more"], n=5)
    assert server.stats()["parsed"] == 305
    # At stop, what is still queued or in flight goes to the dead-letter file too.
    server.stop()
    reasons = [json.loads(line)["reason"] for line in dead.read_text().splitlines()]
    assert reasons.count("unsent_at_stop") == 1 + route["queued"]


def test_exec_gets_the_json_on_stdin_and_a_hanging_command_is_killed_at_its_timeout(
        start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    got = tmp_path / "got.json"
    pid_file = tmp_path / "hang.pid"
    # It starts a child of its own: the whole process group goes at the timeout.
    hang = ("import os, subprocess, time; child = subprocess.Popen(['sleep', '60']); "
            f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); time.sleep(60)")
    save = f"import sys; open({str(got)!r}, 'wb').write(sys.stdin.buffer.read())"
    server = start_server(DETECT + f"""
[[alerts]]
name = "save"
kind = "exec"
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(save)}]
kinds = ["error_spike"]
send_resolved = false

[[alerts]]
name = "hang"
kind = "exec"
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(hang)}]
timeout_s = 1.0
max_retries = 0
send_resolved = false
""")
    burst(server, ["api"])
    answer = wait_routes(server, lambda a: a["routes"]["save"]["sent"] == 1 and a["routes"]["hang"]["failed"] == 1)
    body = json.loads(got.read_bytes())
    assert (body["schema"], body["status"], body["event"]["type"], body["event"]["key"]) == (
        "logtally.alert/1", "firing", "error_spike", "api")
    hang_route = answer["routes"]["hang"]
    assert (hang_route["sent"], hang_route["failed"], hang_route["errors"]) == (0, 1, {"timeout": 1})
    for pid in map(int, pid_file.read_text().split()):
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    """Running (a killed orphan may linger as a zombie until init reaps it: that is not running)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = require_tool("prometheus-alertmanager", "/usr/bin/alertmanager")  # the Debian name first
    (tmp_path / "am").mkdir()
    config = tmp_path / "am" / "alertmanager.yml"
    config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/-/ready", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "alertmanager did not start"
        time.sleep(0.1)
    yield base
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_alertmanager_shows_the_alert_then_shows_it_resolved(
        start_server: Callable[..., ServerProcess], alertmanager: str) -> None:
    server = start_server(DETECT + f"""
[[alerts]]
name = "am"
kind = "alertmanager"
url = "{alertmanager}"
""")
    burst(server, ["api"])
    wait_routes(server, lambda a: a["routes"]["am"]["sent"] == 1)
    (alert,) = _get_json(alertmanager + "/api/v2/alerts")
    assert alert["labels"]["alertname"] == "logtally_error_spike"
    assert (alert["labels"]["service"], alert["labels"]["severity"], alert["status"]["state"]) == (
        "api", "critical", "active")
    wait_routes(server, lambda a: a["routes"]["am"]["sent"] == 2)
    # Resolved (endsAt in the past): Alertmanager lists it no more, and counts it received resolved.
    assert _get_json(alertmanager + "/api/v2/alerts") == []
    with urllib.request.urlopen(alertmanager + "/metrics", timeout=5) as response:
        metrics = response.read().decode()
    received = {line.split("{")[1].split("}")[0]: line.rsplit(" ", 1)[1]
                for line in metrics.splitlines() if line.startswith("alertmanager_alerts_received_total{")}
    assert {labels: n for labels, n in received.items() if n != "0"} == {
        'status="firing",version="v2"': "1", 'status="resolved",version="v2"': "1"}


def test_sighup_adds_a_route_and_a_changed_route_keeps_its_counts(
        start_server: Callable[..., ServerProcess], receiver: Callable[..., Receiver]) -> None:
    rx = receiver()
    server = start_server(DETECT)
    assert server.command("ALERTS") == {"alerts": [], "routes": {}}
    base = server.config_path.read_text()
    block = f'\n[[alerts]]\nname = "late"\nkind = "webhook"\nurl = "{rx.url}"\nsend_resolved = false\n'
    server.config_path.write_text(base + block)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("reloaded")
    burst(server, ["api"])
    assert [b["status"] for b in rx.wait(1)] == ["firing"]
    wait_routes(server, lambda a: a["routes"]["late"]["sent"] == 1)
    server.config_path.write_text(base + block + "repeat_interval_s = 7200.0\n")
    server.proc.send_signal(signal.SIGHUP)
    first = server.wait_log("reloaded")
    server.wait_log("reloaded", where=lambda entry: entry is not first)  # the second reload
    route = server.command("ALERTS")["routes"]["late"]
    assert (route["notifications"], route["sent"], route["matched"] >= 1) == (1, 1, True)


def test_slack_gets_text_and_blocks_from_a_url_kept_in_the_environment(
        start_server: Callable[..., ServerProcess], receiver: Callable[..., Receiver]) -> None:
    rx = receiver()
    server = start_server(DETECT + """
[[alerts]]
name = "chat"
kind = "slack"
url_env = "LOGTALLY_TEST_SLACK_URL"
send_resolved = false
""", env={"LOGTALLY_TEST_SLACK_URL": rx.url})
    burst(server, ["api"])
    (body,) = rx.wait(1)
    assert body["text"].startswith("[FIRING] error_spike on api: 30 errors in 2 s")
    assert [b["type"] for b in body["blocks"]] == ["section", "context"]
    answer = wait_routes(server, lambda a: a["routes"]["chat"]["sent"] == 1)
    assert answer["routes"]["chat"]["target"] == "$LOGTALLY_TEST_SLACK_URL"
    server.stop()
    port = rx.url.split(":")[2].split("/")[0]  # the secret URL's one distinctive part
    assert not [line for line in [*server.raw_output, json.dumps(answer)] if f":{port}/hook" in line]
