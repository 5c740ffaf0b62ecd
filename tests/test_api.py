"""The HTTP API against a real daemon: each `/api/v1` endpoint's JSON equals the control port's
answer to the same command, bad parameters get a JSON 400 naming them, and `/healthz`, `/readyz`,
`/metrics` and `/openapi.json` answer."""
from __future__ import annotations

import json
import signal
import re
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.conftest import ServerProcess, send_tcp
from tests.test_client import BRUTE_FORCE

CONFIG = '[http]\nlisten = "127.0.0.1:0"\n[pipeline]\nworkers = 2\n'


def get(server: ServerProcess, path: str) -> tuple[int, str, Any]:
    """(status, content type, decoded JSON or text) of `GET path`."""
    host, port = server.address("http")
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as response:
            status, kind, body = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        status, kind, body = exc.code, exc.headers["Content-Type"], exc.read()
    return status, kind, json.loads(body) if kind == "application/json" else body.decode()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = ServerProcess(tmp_path_factory.mktemp("api"), CONFIG)
    try:
        send_tcp(server.address("tcp"), ("\n".join(BRUTE_FORCE) + "\n").encode())
        server.wait_received(len(BRUTE_FORCE))
        deadline = time.monotonic() + 20
        while not server.command("EVENTS")["events"] and time.monotonic() < deadline:
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


def without(answer: dict[str, Any], *moving: str) -> dict[str, Any]:
    """`answer` less the figures that move between two questions asked one after the other."""
    return {k: v for k, v in answer.items() if k not in moving}


# STATS figures that change between the HTTP question and the control one: the HTTP listener's
# own connection counts, the uptime, and rates divided by the time elapsed.
MOVING = ("http_server", "uptime_s", "lines_per_s")


@pytest.mark.parametrize("window", ["all", "5m"])
def test_stats_is_the_control_answer(daemon: ServerProcess, window: str) -> None:
    # The event clock runs on at wall-clock pace, so a tick between two questions may move the
    # detector's figures: compare a control answer framed by two equal HTTP answers.
    for _ in range(10):
        status, kind, answer = get(daemon, f"/api/v1/stats?window={window}")
        control = daemon.command(f"STATS {window}")
        again = get(daemon, f"/api/v1/stats?window={window}")[2]
        if without(answer, *MOVING) == without(again, *MOVING):
            break
    assert (status, kind) == (200, "application/json")
    assert answer["received"] == len(BRUTE_FORCE) and set(answer) == set(control)
    assert without(answer, *MOVING) == without(control, *MOVING)


def test_top_is_the_control_answer(daemon: ServerProcess) -> None:
    status, _, answer = get(daemon, "/api/v1/top/service?n=3&window=5m")
    assert status == 200 and answer == daemon.command("TOP service 3 5m")
    assert answer["top"][0]["value"] == "sshd"
    assert get(daemon, "/api/v1/top/HOST")[2] == daemon.command("TOP host")


def test_events_is_the_control_answer(daemon: ServerProcess) -> None:
    status, _, answer = get(daemon, "/api/v1/events?n=20")
    assert status == 200 and answer == daemon.command("EVENTS 20")
    assert answer["events"], "the brute force was detected"
    assert get(daemon, "/api/v1/events")[2] == daemon.command("EVENTS")


def test_alerts_and_senders_are_the_control_answers(daemon: ServerProcess) -> None:
    assert get(daemon, "/api/v1/alerts")[2] == daemon.command("ALERTS")
    status, _, senders = get(daemon, "/api/v1/senders")
    control = daemon.command("SENDERS")
    assert status == 200 and without(senders, "senders") == without(control, "senders")
    # the rates decay between the two questions; every other figure of each row is the same
    rows = [without(row, "rate_per_s", "baseline_per_s") for row in senders["senders"]]
    assert rows and rows == [without(row, "rate_per_s", "baseline_per_s") for row in control["senders"]]
    assert [row["lines"] for row in rows] == [len(BRUTE_FORCE)]


@pytest.mark.parametrize(("path", "parameter", "control"), [
    ("/api/v1/stats?window=7m", "window", "STATS 7m"),
    ("/api/v1/top/service?window=7m", "window", "TOP service 7m"),
    ("/api/v1/top/service?n=0", "n", "TOP service 0"),
    ("/api/v1/top/service?n=100000", "n", "TOP service 100000"),
    ("/api/v1/top/colour", "field", "TOP colour"),
    ("/api/v1/top/service?n=ten", "n", None),
    ("/api/v1/events?n=-1", "n", None),
    ("/api/v1/stats?cluster=true", "cluster", "STATS all cluster"),  # a node without --nats
    ("/api/v1/cluster", "cluster", "CLUSTER"),
])
def test_bad_parameters_are_json_400s_naming_them(daemon: ServerProcess, path: str, parameter: str,
                                                   control: str | None) -> None:
    status, kind, answer = get(daemon, path)
    assert (status, kind, answer["parameter"]) == (400, "application/json", parameter)
    if control is not None:  # the same words as the control port's refusal
        assert answer["error"] == daemon.command(control)["error"]
    assert get(daemon, "/healthz")[0] == 200  # and the daemon is still there


def test_health_readiness_and_metrics(daemon: ServerProcess) -> None:
    assert get(daemon, "/healthz") == (200, "application/json", {"ok": True})
    assert get(daemon, "/readyz") == (200, "application/json", {"ready": True})
    status, kind, text = get(daemon, "/metrics")
    assert (status, kind) == (200, "text/plain; version=0.0.4; charset=utf-8")
    assert f"logtally_lines_received_total {float(len(BRUTE_FORCE))}\n" in text
    assert get(daemon, "/nowhere") == (404, "application/json", {"error": "Not Found"})
    host, port = daemon.address("http")
    head = urllib.request.Request(f"http://{host}:{port}/metrics", method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as response:  # what the old server answered too
        assert response.status == 200 and int(response.headers["Content-Length"]) > 0 and response.read() == b""
    post = urllib.request.Request(f"http://{host}:{port}/metrics", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=10)
    assert refused.value.code == 405 and json.loads(refused.value.read()) == {"error": "Method Not Allowed"}


@pytest.mark.parametrize("accept", ["application/openmetrics-text; version=abc",
                                    "application/openmetrics-text;version=1.x.0"])
def test_metrics_with_an_accept_header_it_cannot_read_answers_the_text_format(daemon: ServerProcess,
                                                                               accept: str) -> None:
    # Accept is a preference (RFC 9110 §12.5.1): a version that is no version gets the default format.
    host, port = daemon.address("http")
    request = urllib.request.Request(f"http://{host}:{port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "logtally_lines_received_total" in response.read().decode()
    assert get(daemon, "/healthz")[0] == 200


def test_openapi_is_valid_and_lists_every_endpoint(daemon: ServerProcess) -> None:
    from openapi_spec_validator import validate

    status, _, spec = get(daemon, "/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    validate(spec)
    assert set(spec["paths"]) == {
        "/metrics", "/healthz", "/readyz", "/api/v1/stats", "/api/v1/top/{field}", "/api/v1/events",
        "/api/v1/alerts", "/api/v1/history", "/api/v1/senders", "/api/v1/stream", "/api/v1/cluster",
    }


def test_docs_are_served_by_the_daemon_alone(daemon: ServerProcess) -> None:
    """Every asset the /docs page names is a path on the daemon that answers; none is on a CDN."""
    status, kind, page = get(daemon, "/docs")
    assert status == 200 and kind.startswith("text/html")
    assets = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page)
    assert "/openapi.json" in assets and any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        host, port = daemon.address("http")
        with urllib.request.urlopen(f"http://{host}:{port}{asset}", timeout=10) as response:
            assert response.status == 200 and response.read()
    assert "https://" not in page and "http://" not in page


def sse_events(response: Any, n: int) -> list[dict[str, Any]]:
    """The next `n` SSE events' JSON, read line by line from the open response."""
    events: list[dict[str, Any]] = []
    while len(events) < n:
        line = response.readline()
        assert line, "the stream ended"
        if line.startswith(b"data: "):
            events.append(json.loads(line[len(b"data: "):]))
        else:
            assert line == b"\n", line  # events are separated by a blank line, nothing else is sent
    return events


def test_stream_is_the_subscription_as_server_sent_events(start_server) -> None:
    server = start_server(CONFIG)
    host, port = server.address("http")
    url = f"http://{host}:{port}/api/v1/stream?topics=stats,anomalies&interval_s=0.5"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        assert sse_events(response, 1) == [{"subscribed": ["anomalies", "stats"]}]
        assert server.stats()["subscribers"]["open"] == 1
        send_tcp(server.address("tcp"), ("\n".join(BRUTE_FORCE) + "\n").encode())
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                any(e.get("type") == "stats" and e["received"] == len(BRUTE_FORCE) for e in seen)
                and any(e.get("type") != "stats" for e in seen)):
            seen += sse_events(response, 1)
        anomalies = [e for e in seen if e.get("type") != "stats"]
        assert anomalies and anomalies[0] in server.command("EVENTS")["events"]
    deadline = time.monotonic() + 30
    while server.stats()["subscribers"]["open"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["subscribers"]["open"] == 0  # the client left: so did its subscriber


@pytest.mark.parametrize(("query", "status", "parameter"), [
    ("topics=tail", 403, "topics"),
    ("topics=weather", 400, "topics"),
    ("topics=stats,level%3Derror", 400, "topics"),
    ("topics=stats&interval_s=0", 400, "interval_s"),
    ("topics=stats&level=error", 400, "level"),  # level filters tail records, and tail is not asked for
    ("topics=tail&level=loud", 400, "level"),
])
def test_stream_refusals(daemon: ServerProcess, query: str, status: int, parameter: str) -> None:
    answer = get(daemon, f"/api/v1/stream?{query}")
    assert (answer[0], answer[2]["parameter"]) == (status, parameter)



def test_the_daemon_stops_cleanly_with_a_stream_open(start_server) -> None:
    server = start_server(CONFIG)
    host, port = server.address("http")
    with urllib.request.urlopen(f"http://{host}:{port}/api/v1/stream?topics=anomalies", timeout=30) as response:
        assert sse_events(response, 1) == [{"subscribed": ["anomalies"]}]
        assert server.stop() == 0
        assert response.read() == b"\n"  # the first event's blank line, then a whole, ended stream
    assert [e for e in server.logs if e.get("level") in ("error", "critical")] == []


def test_a_token_guards_everything_but_the_probes(start_server, tmp_path) -> None:
    token = "0123456789abcdef0123456789abcdef"
    token_file = tmp_path / "http.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    server = start_server(f'[http]\nlisten = "127.0.0.1:0"\ntoken_file = "{token_file}"\n')
    assert server.wait_log("http_auth")["auth"] == "bearer_token"
    host, port = server.address("http")

    def fetch(path: str, authorization: str | None) -> int:
        request = urllib.request.Request(f"http://{host}:{port}{path}")
        if authorization is not None:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            assert exc.code != 401 or exc.headers["WWW-Authenticate"] == "Bearer"
            return exc.code

    for path in ("/api/v1/stats", "/metrics", "/openapi.json", "/docs", "/api/v1/stream?topics=tail"):
        assert fetch(path, None) == 401
        assert fetch(path, f"Bearer {token[:-1]}x") == 401
    assert fetch("/api/v1/stats", f"Bearer {token}") == 200
    assert fetch("/metrics", f"bearer {token}") == 200  # the scheme is case-insensitive
    assert fetch("/healthz", None) == 200 and fetch("/readyz", None) == 200
    # the dashboard's page and files hold no figures: open, so a browser can load the page that asks for the token
    assert fetch("/", None) == 200 and fetch("/static/dashboard.js", None) == 200
    assert fetch("/static/nothing.js", None) == 401 and fetch("/static/../api/v1/stats", None) == 401


def test_sighup_reads_the_token_file_again(start_server, tmp_path) -> None:
    """A rotated token applies to the next request; a file that went missing or a token removed
    from a listener off loopback is `reload_rejected`, and the running token stays."""
    first, second = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
    token_file = tmp_path / "http.token"
    token_file.write_text(first + "\n")
    token_file.chmod(0o600)
    server = start_server(f'[http]\nlisten = "0.0.0.0:0"\ntoken_file = "{token_file}"\n')
    _, port = server.address("http")

    def status(token: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/stats",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert (status(first), status(second)) == (200, 401)
    token_file.write_text(second + "\n")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("reloaded")
    assert (status(first), status(second)) == (401, 200)
    text = server.config_path.read_text()
    server.config_path.write_text(text.replace(f'token_file = "{token_file}"', 'token_file = ""'))
    server.proc.send_signal(signal.SIGHUP)
    assert "is not on loopback and http.token_file is not set" in server.wait_log("reload_rejected")["reason"]
    assert (status(first), status(second)) == (401, 200)


def test_tail_with_a_level_streams_what_subscribe_tail_streams(start_server, tmp_path) -> None:
    """With the bearer token, `tail&level=error` gets the records `SUBSCRIBE tail level>=error`
    gets on the control port after AUTH: the same filter, the same records."""
    token = "0123456789abcdef0123456789abcdef"
    token_file = tmp_path / "http.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    server = start_server(f'[http]\nlisten = "127.0.0.1:0"\ntoken_file = "{token_file}"\n[pipeline]\nworkers = 1\n')
    host, port = server.address("http")
    request = urllib.request.Request(f"http://{host}:{port}/api/v1/stream?topics=tail,stats&level=error&interval_s=0.2",
                                     headers={"Authorization": f"Bearer {token}"})
    levels = ["INFO", "ERROR", "WARNING", "CRITICAL", "DEBUG", "ERROR"]
    pri = {"DEBUG": 15, "INFO": 14, "WARNING": 12, "ERROR": 11, "CRITICAL": 10}
    lines = [f"<{pri[lv]}>1 2025-02-01T10:00:0{i}Z web1 api 1 - - line {i} at {lv}" for i, lv in enumerate(levels)]
    with urllib.request.urlopen(request, timeout=30) as response:
        assert sse_events(response, 1) == [{"subscribed": ["stats", "tail"]}]
        send_tcp(server.address("tcp"), ("\n".join(lines) + "\n").encode())
        records: list[dict[str, Any]] = []
        while True:  # a stats snapshot with every line counted comes after the batch's records
            event = sse_events(response, 1)[0]
            if event.get("type") == "record":
                records.append(event)
            elif event.get("type") == "stats" and event["received"] == len(lines):
                break
    assert [r["message"] for r in records] == [f"line {i} at {lv}" for i, lv in enumerate(levels)
                                               if lv in ("ERROR", "CRITICAL")]
    assert server.stats()["received"] == len(lines)


def test_tail_without_a_token_is_refused_as_on_the_control_port(daemon: ServerProcess) -> None:
    status, _, answer = get(daemon, "/api/v1/stream?topics=tail&level=error")
    assert (status, answer["error"]) == (403, daemon.command("SUBSCRIBE tail level>=error")["error"])


def test_off_loopback_needs_a_token(start_server) -> None:
    with pytest.raises(AssertionError, match="is not on loopback and http.token_file is not set"):
        start_server('[http]\nlisten = "0.0.0.0:0"\n')


def test_off_loopback_without_a_token_needs_an_explicit_waiver(start_server) -> None:
    server = start_server('[http]\nlisten = "0.0.0.0:0"\nallow_unauthenticated = true\n')
    assert server.wait_log("http_auth")["auth"] == "unauthenticated"
