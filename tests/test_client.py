"""The `logtally` CLI (`python -m logtally.cli`) against a real `logtallyd` subprocess on loopback.

send (files, gzip, stdin, several at once, `--wait` summary), stats, top, events, subscribe,
tail and watch, each checked against exact counts the test itself put into the server.
"""
from __future__ import annotations

import gzip
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, ServerProcess, send_tcp

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def logtally(server: ServerProcess, *args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "logtally", "--control", server.addresses["control"],
         "--token-file", str(server.token_file), *args],
        input=stdin, capture_output=True, timeout=timeout, env=ENV, cwd=ROOT,
    )


class Streaming:
    """A long-running `logtally` subprocess whose stdout lines are read with a timeout."""

    def __init__(self, server: ServerProcess, *args: str, control: str | None = None, token: bool = True) -> None:
        """Over TCP with the server's token file, unless `control` (e.g. `unix:PATH`) or `token=False`."""
        options = ["--control", control or server.addresses["control"]]
        if token:
            options += ["--token-file", str(server.token_file)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logtally", *options, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=ROOT, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def read(self, n: int, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        out: list[str] = []
        while len(out) < n:
            try:
                out.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
                raise AssertionError(f"got {len(out)} of {n} lines: {out!r} {stderr}") from None
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


def rfc5424(i: int, severity: int = 6, message: str = "request {i} served") -> str:
    return f"<{8 + severity}>1 2025-01-30T12:00:{i % 60:02d}Z web-{i % 3} api {i} - - " + message.format(i=i)


def app_line(i: int) -> str:
    return f"2025-01-30 12:01:{i % 60:02d},{i % 1000:03d} WARNING [billing] retry {i} of invoice"


def access_line(i: int, ip: str = "10.0.0.1", status: int = 200) -> str:
    return f'{ip} - - [30/Jan/2025:12:02:{i % 60:02d} +0000] "GET /items/{i} HTTP/1.1" {status} {100 + i} "-" "curl/8.5"'


def json_line(i: int) -> str:
    return json.dumps({"ts": f"2025-01-30T12:03:{i % 60:02d}Z", "level": "info", "service": "auth", "msg": f"login {i}"})


# -- send ------------------------------------------------------------------------------------

def test_send_files_gzip_stdin_concurrently_with_exact_wait_summary(start_server, tmp_path: Path) -> None:
    server = start_server()
    plain = tmp_path / "api.log"
    plain.write_text("".join(rfc5424(i) + "\n" for i in range(3000)))
    # The last line has no newline: it is still a line.
    app = tmp_path / "billing.log"
    app.write_text("\n".join(app_line(i) for i in range(1200)))
    zipped = tmp_path / "access.log.gz"
    with gzip.open(zipped, "wt") as f:
        f.writelines(access_line(i) + "\n" for i in range(2500))
    # gzip is recognised by its magic bytes, not by the name (a rotated `.1` file).
    rotated = tmp_path / "access.log.1"
    rotated.write_bytes(gzip.compress("".join(access_line(i) + "\n" for i in range(500)).encode()))
    # One empty line, rejected as `empty` by the server: the summary must show it.
    stdin = ("".join(json_line(i) + "\n" for i in range(700)) + "\n").encode()

    out = logtally(server, "send", "--to", server.addresses["tcp"], "--wait", "--json", "--concurrency", "3",
                  str(plain), str(app), str(zipped), str(rotated), "-", stdin=stdin)
    assert out.returncode == 0, out.stderr.decode()
    summary = json.loads(out.stdout)
    total = 3000 + 1200 + 2500 + 500 + 701
    assert summary["files"] == 5 and summary["lines"] == total and summary["errors"] == {}
    assert summary["server"] == {"received": total, "parsed": total - 1, "rejected": {"empty": 1}}

    report = server.stats()
    assert report["received"] == total and report["parsed"] == total - 1
    assert report["by_format"] == {"rfc5424": 3000, "app": 1200, "access": 3000, "json": 700}
    assert report["connections"]["total"] == 5  # one connection per file
    assert report["by_level"]["WARNING"] == 1200

    # A second send: the summary counts this send only, not the server's totals.
    out = logtally(server, "send", "--to", server.addresses["tcp"], "--wait", str(plain))
    assert out.returncode == 0
    text = out.stderr.decode()
    assert "sent 3000 lines" in text and "server: received 3000, parsed 3000, rejected 0" in text


def test_send_octet_counted_syslog_mixed_with_ip_led_lines(start_server, tmp_path: Path) -> None:
    server = start_server()
    path = tmp_path / "mixed.log"
    # Syslog lines go octet-counted, IP-led access lines LF-terminated, on one connection; a
    # syslog message may then carry a line break of its own... but the file has none.
    path.write_text("".join(access_line(i, ip=f"10.1.3.{i % 7}") + "\n" + rfc5424(i) + "\n" for i in range(1000)))
    out = logtally(server, "send", "--to", server.addresses["tcp"], "--octet-count", "--wait", "--json", str(path))
    summary = json.loads(out.stdout)
    assert summary["lines"] == 2000
    assert summary["server"] == {"received": 2000, "parsed": 2000, "rejected": {}}
    assert server.stats()["by_format"] == {"access": 1000, "rfc5424": 1000}


def test_send_reports_missing_and_corrupt_files_and_still_sends_the_rest(start_server, tmp_path: Path) -> None:
    server = start_server()
    good = tmp_path / "good.log"
    good.write_text("one\ntwo\n")
    broken = tmp_path / "broken.log.gz"
    broken.write_bytes(gzip.compress(b"x\n" * 10000)[:50])  # truncated gzip
    out = logtally(server, "send", "--to", server.addresses["tcp"], "--wait", "--json",
                  str(good), str(tmp_path / "missing.log"), str(broken))
    assert out.returncode == 1
    summary = json.loads(out.stdout)
    assert set(summary["errors"]) == {str(tmp_path / "missing.log"), str(broken)}
    assert "No such file" in summary["errors"][str(tmp_path / "missing.log")]
    assert server.stats()["received"] >= 2


def test_send_to_a_closed_port_fails_cleanly(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "logtally", "--control", "127.0.0.1:1", "stats"],
                         capture_output=True, timeout=30, env=ENV, cwd=ROOT)
    assert out.returncode == 1
    assert out.stderr.decode().startswith("logtally: cannot reach logtallyd control port at 127.0.0.1:1")


# -- stats and top -----------------------------------------------------------------------------

def table_rows(text: str) -> dict[str, str]:
    """The first block of a `logtally stats` table: `label  value` rows."""
    rows = {}
    for line in text.split("\n\n")[0].splitlines():
        label, _, value = line.rpartition("  ")
        rows[label.strip()] = value.strip()
    return rows


def test_stats_table_and_json(start_server) -> None:
    server = start_server()
    lines = [rfc5424(i) for i in range(40)] + [rfc5424(i, severity=3, message="db down {i}") for i in range(10)]
    lines += [access_line(i, status=503 if i < 5 else 200) for i in range(20)]
    send_tcp(server.address("tcp"), ("\n".join(lines) + "\n\n").encode())
    server.wait_received(71)

    out = logtally(server, "stats", "--json")
    assert out.returncode == 0
    report = json.loads(out.stdout)
    assert report["received"] == 71 and report["parsed"] == 70 and report["rejected"] == {"empty": 1}
    assert report["by_format"] == {"rfc5424": 50, "access": 20}
    # An access-log line with a 5xx status is an ERROR line, so errors are 10 + 5.
    assert report["errors"] == 15 and report["http"]["by_class"] == {"2xx": 15, "5xx": 5}

    out = logtally(server, "stats")
    assert out.returncode == 0
    text = out.stdout.decode()
    rows = table_rows(text)
    assert rows["received"] == "71" and rows["parsed"] == "70" and rows["rejected"] == "1"
    assert rows["errors"] == "15" and rows["error rate"] == f"{15 / 70 * 100:.2f}%"
    assert rows["first event"] == "2025-01-30T12:00:00Z"
    assert "\nrejected by reason\nempty  1\n" in text
    assert "\nHTTP by status class\n2xx  15\n5xx   5\n" in text

    out = logtally(server, "stats", "--window", "5m", "--json")
    assert json.loads(out.stdout)["window"] == "5m"
    out = logtally(server, "stats", "--window", "7m")
    assert out.returncode == 1 and "unknown window '7m'" in out.stderr.decode()


def test_top_table_and_json(start_server) -> None:
    server = start_server()
    ips = ["10.0.0.1"] * 5 + ["10.0.0.2"] * 3 + ["2001:db8::7"]
    send_tcp(server.address("tcp"), "".join(access_line(i, ip=ip) + "\n" for i, ip in enumerate(ips)).encode())
    server.wait_received(len(ips))

    out = logtally(server, "top", "ip", "-n", "2", "--json")
    assert out.returncode == 0
    answer = json.loads(out.stdout)
    assert answer["field"] == "ip" and answer["n"] == 2
    assert [(t["value"], t["count"]) for t in answer["top"]] == [("10.0.0.1", 5), ("10.0.0.2", 3)]

    out = logtally(server, "top", "ip")
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "top ip (all)"
    assert lines[1].split() == ["value", "count", "share"]
    assert [line.split()[:2] for line in lines[3:]] == [["10.0.0.1", "5"], ["10.0.0.2", "3"], ["2001:db8::7", "1"]]


# -- events, subscribe, tail, watch ---------------------------------------------------------------

BRUTE_FORCE = [
    "<38>1 2025-02-01T10:00:01Z bastion sshd 1 - - Failed password for root from 203.0.113.9 port 22 ssh2",
    "<38>1 2025-02-01T10:00:02Z bastion sshd 1 - - Failed password for root from 203.0.113.9 port 22 ssh2",
    "<38>1 2025-02-01T10:00:03Z bastion sshd 1 - - Failed password for root from 203.0.113.9 port 22 ssh2",
    "<38>1 2025-02-01T10:00:05Z bastion sshd 1 - - Accepted password for root from 203.0.113.9 port 22 ssh2",
    # Event time moves on past the detectors' lateness bound, so the seconds above are processed.
    "<38>1 2025-02-01T10:01:00Z bastion sshd 1 - - session closed",
]


def wait_events(server: ServerProcess, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = server.command("EVENTS")["events"]
        if len(events) >= n or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_events_no_follow(start_server) -> None:
    server = start_server()
    out = logtally(server, "events", "--no-follow")
    assert out.returncode == 0 and out.stdout == b""

    send_tcp(server.address("tcp"), ("\n".join(BRUTE_FORCE) + "\n").encode())
    assert len(wait_events(server, 1)) == 1

    out = logtally(server, "events", "--no-follow", "--json")
    assert out.returncode == 0
    (event,) = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert event["type"] == "pattern" and event["key"] == "203.0.113.9" and event["pattern"] == "ssh_brute_force"
    assert event["timestamps"] == [1738404001.0, 1738404002.0, 1738404003.0, 1738404005.0]

    out = logtally(server, "events", "--no-follow")
    assert out.stdout.decode().splitlines() == [
        "2025-02-01T10:00:05Z  pattern        pattern  key=203.0.113.9  pattern=ssh_brute_force field=ip"
    ]


def test_events_follow_prints_new_events(start_server) -> None:
    server = start_server()
    client = Streaming(server, "events", "--json")
    try:
        # The subscription is in place once the server counts a subscriber.
        deadline = time.monotonic() + 20
        while server.stats()["subscribers"]["open"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        send_tcp(server.address("tcp"), ("\n".join(BRUTE_FORCE) + "\n").encode())
        (line,) = client.read(1)
        event = json.loads(line)
        assert event["type"] == "pattern" and event["key"] == "203.0.113.9"
    finally:
        client.stop()


def wait_subscribers(server: ServerProcess, n: int) -> None:
    deadline = time.monotonic() + 20
    while server.stats()["subscribers"]["open"] < n:
        assert time.monotonic() < deadline, "the client never subscribed"
        time.sleep(0.05)


def test_tail_level_error_shows_only_errors(start_server) -> None:
    server = start_server()
    client = Streaming(server, "tail", "--level", "error")
    try:
        wait_subscribers(server, 1)
        lines = []
        for i in range(30):
            lines.append(rfc5424(i))
            if i % 10 == 0:
                lines.append(rfc5424(i, severity=3, message="payment {i} failed"))
        send_tcp(server.address("tcp"), ("\n".join(lines) + "\n").encode())
        got = client.read(3)
        assert got == [f"2025-01-30T12:00:{i:02d}Z  ERROR   api  payment {i} failed" for i in (0, 10, 20)]
        assert client.lines.empty()
    finally:
        client.stop()


def test_subscribe_tail_json_with_filter(start_server) -> None:
    server = start_server()
    client = Streaming(server, "subscribe", "tail", "service=auth", "--json")
    try:
        wait_subscribers(server, 1)
        lines = [rfc5424(i) for i in range(5)] + [json_line(i) for i in range(4)]
        send_tcp(server.address("tcp"), ("\n".join(lines) + "\n").encode())
        records = [json.loads(line) for line in client.read(4)]
        assert [r["message"] for r in records] == [f"login {i}" for i in range(4)]
        assert {r["type"] for r in records} == {"record"} and {r["service"] for r in records} == {"auth"}
    finally:
        client.stop()


def test_subscribe_stats_stream(start_server) -> None:
    server = start_server()
    send_tcp(server.address("tcp"), b"hello\nworld\n")
    server.wait_received(2)
    client = Streaming(server, "subscribe", "stats", "interval=0.2")
    try:
        got = client.read(2)
        assert got == ["received=2 parsed=2 lines/s=" + got[0].rsplit("=", 1)[1]] * 2
    finally:
        client.stop()


def test_subscribe_unknown_topic_is_an_error(start_server) -> None:
    server = start_server()
    out = logtally(server, "subscribe", "nonsense")
    assert out.returncode == 1 and out.stderr.decode().startswith("logtally: usage: SUBSCRIBE")


def test_watch_without_a_terminal_appends_snapshots(start_server) -> None:
    server = start_server()
    send_tcp(server.address("tcp"), "".join(rfc5424(i) + "\n" for i in range(12)).encode())
    server.wait_received(12)
    client = Streaming(server, "watch", "--interval", "0.3", "--window", "all")
    header = f"logtally {server.addresses['control']}  window all  "
    try:
        # Each refresh: a header line, a blank line, the table, a blank line; read two of them.
        lines = client.read(1)
        assert lines[0].startswith(header)
        while sum(line.startswith(header) for line in lines) < 3:
            lines += client.read(1)
        assert "\x1b" not in "".join(lines)  # no cursor movement when stdout is not a TTY
        starts = [i for i, line in enumerate(lines) if line.startswith(header)]
        first, second = lines[starts[0]:starts[1]], lines[starts[1]:starts[2]]
        for snapshot in (first, second):
            assert snapshot[1] == "" and snapshot[-1] == ""
            assert table_rows("\n".join(snapshot[2:]))["received"] == "12"
    finally:
        client.stop()


@pytest.mark.parametrize("action", ["count", "is"])
def test_prime(start_server, action: str) -> None:
    server = start_server()
    if action == "count":
        out = logtally(server, "prime", "count", "1", "1e6", "--json")
        result = json.loads(out.stdout)
        assert result["count"] == 78498 and result["last"] == 999983
        out = logtally(server, "prime", "count", "10", "1")
        assert out.returncode == 1 and "below lo" in out.stderr.decode()
    else:
        out = logtally(server, "prime", "is", "561")
        assert out.stdout.decode().startswith("561 is composite (deterministic")


def test_watch_json_appends_one_stats_object_per_refresh(start_server) -> None:
    server = start_server()
    send_tcp(server.address("tcp"), "".join(rfc5424(i) + "\n" for i in range(12)).encode())
    server.wait_received(12)
    client = Streaming(server, "watch", "--interval", "0.2", "--window", "all", "--json")
    try:
        for line in client.read(3):
            report = json.loads(line)
            assert report["window"] == "all" and report["received"] == 12 and report["by_level"] == {"INFO": 12}
    finally:
        client.stop()


def test_tail_color_always_keeps_columns_and_colour_through_a_pipe(start_server) -> None:
    server = start_server()
    client = Streaming(server, "tail", "--color", "always")
    try:
        wait_subscribers(server, 1)
        send_tcp(server.address("tcp"), (rfc5424(1, severity=3, message="payment failed") + "\n").encode())
        (line,) = client.read(1)
        # rich's SGR codes: dim time, red level; columns as on a terminal.
        assert line == ("\x1b[2m2025-01-30T12:00:01Z\x1b[0m \x1b[31mERROR  \x1b[0m api        web-1      "
                        "payment failed")
    finally:
        client.stop()


def test_tail_over_the_unix_socket_needs_no_token(start_server, control_socket: str) -> None:
    server = start_server(f'[control]\nunix_socket = "{control_socket}"\n')
    client = Streaming(server, "tail", "--level", "error", control=f"unix:{control_socket}", token=False)
    try:
        wait_subscribers(server, 1)
        send_tcp(server.address("tcp"), (rfc5424(1) + "\n" + rfc5424(2, severity=3, message="disk {i} full") + "\n").encode())
        assert client.read(1) == ["2025-01-30T12:00:02Z  ERROR   api  disk 2 full"]
    finally:
        client.stop()
    assert server.stats()["control"] == {"auth_ok": 0, "refused": {}}


def test_tail_over_tcp_without_a_token_is_refused(start_server) -> None:
    server = start_server()
    client = Streaming(server, "tail", token=False)
    assert client.proc.wait(30) == 1
    assert client.proc.stderr is not None
    assert client.proc.stderr.read() == (
        "logtally: auth required: send AUTH <token> first, or use the control Unix socket\n")
    client.stop()
    assert server.stats()["control"] == {"auth_ok": 0, "refused": {"auth_required": 1}}


def test_token_file_from_the_environment_and_a_wrong_one(start_server, tmp_path: Path) -> None:
    server = start_server()
    command = [sys.executable, "-m", "logtally", "--control", server.addresses["control"], "prime", "list", "10", "30"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**ENV, "LOGTALLY_TOKEN_FILE": str(server.token_file)})
    assert (out.returncode, out.stdout.split()) == (0, ["11", "13", "17", "19", "23", "29"]), out.stderr
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-right-token-at-all\n")
    out = subprocess.run([*command[:5], "--token-file", str(wrong), *command[5:]], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env=ENV)
    assert (out.returncode, out.stderr) == (1, f"logtally: AUTH with token file {wrong}: auth failed\n")
    assert server.stats()["control"] == {"auth_ok": 1, "refused": {"auth_failed": 1}}
