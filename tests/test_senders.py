"""SENDERS and the sender detectors end to end: real senders (nc, util-linux logger with octet
counting, Python's SysLogHandler over TCP) on their own loopback source addresses."""
from __future__ import annotations

import json
import logging
import logging.handlers
import socket
import subprocess
import sys
import time
from typing import Any

from conftest import ROOT, ServerProcess, require_tool

from logtallyd.ingest.peers import Bucket, Peers, host_of

CONFIG = """
[pipeline]
event_lateness_s = 0
batch_delay_ms = 5
[ingest]
max_message_bytes = 200
[detect.senders]
min_samples = 3
silent_multiple = 2.0
min_silent_s = 3
"""


class BoundSysLogHandler(logging.handlers.SysLogHandler):
    """SysLogHandler over TCP (it ends each message with NUL), connecting from `source`."""

    def __init__(self, address: tuple[str, int], source: str) -> None:
        self.source = source
        super().__init__(address, socktype=socket.SOCK_STREAM)

    def createSocket(self) -> None:
        self.unixsocket = False
        sock = socket.socket()
        sock.bind((self.source, 0))
        sock.connect(self.address)
        self.socket, self.socktype = sock, socket.SOCK_STREAM


def senders_by_peer(server: ServerProcess) -> dict[str, dict[str, Any]]:
    return {row["peer"]: row for row in server.command("SENDERS")["senders"]}


def wait_senders(server: ServerProcess, check: Any, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows = senders_by_peer(server)
    while not check(rows) and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = senders_by_peer(server)
    return rows


def test_three_real_senders_then_one_goes_silent_and_comes_back(start_server) -> None:
    nc = require_tool("nc")
    logger = require_tool("logger")
    server = start_server(CONFIG)
    host, port = server.address("tcp")

    # nc from 127.0.0.2, LF lines, one a second: a steady rhythm the detector learns.
    netcat = subprocess.Popen([nc, "-N", "-s", "127.0.0.2", host, str(port)], stdin=subprocess.PIPE)
    assert netcat.stdin is not None
    sent = b""
    try:
        for i in range(6):
            line = f"steady line {i}\n".encode()
            netcat.stdin.write(line)
            netcat.stdin.flush()
            sent += line
            time.sleep(1.0)

        # logger (util-linux) from 127.0.0.1, RFC 6587 octet counting.
        for i in range(3):
            subprocess.run([logger, "--tcp", "-n", host, "-P", str(port), "--octet-count", "-t", "app",
                            f"logger line {i}"], check=True, timeout=30)
        # SysLogHandler from 127.0.0.3: NUL-terminated messages.
        handler = BoundSysLogHandler((host, port), "127.0.0.3")
        pylog = logging.getLogger("test_senders")
        pylog.addHandler(handler)
        pylog.propagate = False
        for i in range(3):
            pylog.warning("handler line %d", i)
        handler.close()
        # An oversize line (over max_message_bytes) from 127.0.0.4.
        with socket.socket() as sock:
            sock.bind(("127.0.0.4", 0))
            sock.connect((host, port))
            sock.sendall(b"x" * 300 + b"\nshort\n")

        # Lines are counted as they are read, host fields once their batch is parsed.
        rows = wait_senders(server, lambda r: r.get("127.0.0.1", {}).get("lines") == 3
                            and r.get("127.0.0.1", {}).get("hostnames")
                            and r.get("127.0.0.3", {}).get("lines") == 3
                            and r.get("127.0.0.4", {}).get("lines") == 2
                            and r.get("127.0.0.2", {}).get("lines") == 6)
        lf, octet, nul, big = rows["127.0.0.2"], rows["127.0.0.1"], rows["127.0.0.3"], rows["127.0.0.4"]
        assert lf["framing"] == ["lf"] and lf["bytes"] == len(sent) and lf["rejected"] == {}
        assert lf["connections"] == 1 and lf["hostnames"] == [] and lf["tls_client"] is None
        assert octet["framing"] == ["octet_counted"] and octet["connections"] == 0
        assert octet["hostnames"] and not octet["hostnames_truncated"]  # logger names this machine
        assert socket.gethostname().split(".")[0] in octet["hostnames"][0]
        assert nul["framing"] == ["nul"]
        assert nul["bytes"] == sum(len(f"<12>handler line {i}\0") for i in range(3))
        assert big["oversize"] == 1 and big["rejected"] == {"oversize": 1} and big["reject_ratio"] == 0.5
        assert lf["first_seen"] <= lf["last_seen"] and lf["rate_per_s"] > 0 and lf["baseline_per_s"] > 0
        closed = server.wait_log("connection_closed", where=lambda e: e["peer"].startswith("127.0.0.3:"))
        assert closed["framing"] == ["nul"]  # each connection's own framing is in its log line
        answer = server.command("SENDERS")
        assert answer["tracked"] == 4 and answer["evicted"] == 0
        assert answer["senders"][0]["peer"] == "127.0.0.4"  # most recently seen first

        # nc stops: sender_silent; it sends again: sender_back.
        silent = server.wait_log("anomaly", timeout=30,
                                 where=lambda e: e.get("type") == "sender_silent" and e.get("key") == "127.0.0.2")
        assert silent["silent_s"] > 3 and silent["usual_gap_s"] > 0
        netcat.stdin.write(b"back again\n")
        netcat.stdin.flush()
        back = server.wait_log("anomaly", timeout=30,
                               where=lambda e: e.get("type") == "sender_back" and e.get("key") == "127.0.0.2")
        assert back["lines"] == 1 and back["silent_s"] >= silent["silent_s"]
        events = server.command("EVENTS 100")["events"]
        kinds = [(e["type"], e["key"]) for e in events if e["type"].startswith("sender_")]
        assert kinds == [("sender_silent", "127.0.0.2"), ("sender_back", "127.0.0.2")]
    finally:
        netcat.stdin.close()
        netcat.wait(30)


def test_sender_table_evicts_the_least_recently_seen_at_the_bound() -> None:
    peers = Peers(2, 0.0, 1, 0)
    for i, host in enumerate(["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3"]):
        peers.get(host, float(i), wall=1000.0 + i).received(1, 10, float(i), 1000.0 + i)
    answer = peers.senders(4.0)
    assert [row.peer for row in answer.senders] == ["10.0.0.3", "10.0.0.1"]
    assert answer.tracked == 2 and answer.evicted == 1
    assert answer.senders[1].lines == 2 and answer.senders[1].first_seen == 1000.0
    assert answer.senders[1].last_seen == 1002.0


def test_hostnames_are_bounded_and_rejects_counted_per_sender() -> None:
    peers = Peers(10, 0.0, 1, 0, max_hostnames=2)
    row = peers.get("10.0.0.1", 0.0)
    row.received(4, 40, 0.0, 0.0)
    peers.claimed(host_of("10.0.0.1:514"), ["a", "b"])
    peers.claimed("10.0.0.1", ["a", "c"])
    peers.rejected(host_of("10.0.0.1:6000"), "invalid_json")
    peers.rejected("10.9.9.9", "invalid_json")  # not in the table: not brought back
    [sender] = peers.senders(0.0).senders
    assert sender.hostnames == ["a", "b"] and sender.hostnames_truncated
    assert sender.rejected == {"invalid_json": 1} and sender.reject_ratio == 0.25
    assert peers.senders(0.0).tracked == 1
    assert host_of("[::1]:514") == "::1" and host_of("archive") == "archive"


def test_rates_decay_towards_zero_when_the_sender_stops() -> None:
    peers = Peers(10, 0.0, 1, 0)
    row = peers.get("h", 0.0)
    row.received(100, 1000, 0.0, 0.0)
    first = peers.senders(0.0).senders[0]
    assert first.rate_per_s == 10.0 and round(first.baseline_per_s, 3) == round(100 / 600, 3)
    later = peers.senders(100.0).senders[0]
    assert later.rate_per_s < 0.001 and 0 < later.baseline_per_s < first.baseline_per_s
    assert isinstance(row.bucket, Bucket)


def test_logtally_senders_prints_the_table_and_json_without_auth(start_server) -> None:
    server = start_server()
    with socket.socket() as sock:
        sock.bind(("127.0.0.5", 0))
        sock.connect(server.address("tcp"))
        sock.sendall(b"<13>1 2025-01-30T12:00:00Z web-1 app - - - hello\n")
        wait_senders(server, lambda r: r.get("127.0.0.5", {}).get("lines") == 1)
        wait_senders(server, lambda r: r.get("127.0.0.5", {}).get("hostnames") == ["web-1"])
        env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
        base = [sys.executable, "-m", "logtally", "--control", server.addresses["control"]]  # no token
        table = subprocess.run([*base, "senders"], capture_output=True, text=True, timeout=60, env=env)
        assert table.returncode == 0, table.stderr
        assert "127.0.0.5" in table.stdout and "web-1" in table.stdout and "lf" in table.stdout
        as_json = subprocess.run([*base, "--json", "senders"], capture_output=True, text=True, timeout=60, env=env)
        [row] = [r for r in json.loads(as_json.stdout)["senders"] if r["peer"] == "127.0.0.5"]
        assert row["lines"] == 1 and row["framing"] == ["lf"] and row["connections"] == 1


def test_a_burst_far_above_a_senders_baseline_is_a_sender_flood(start_server) -> None:
    server = start_server(CONFIG.replace("min_silent_s = 3", "min_silent_s = 3\nflood_factor = 5.0\nflood_min_lines = 200"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.7", 0))
        sock.connect(server.address("tcp"))
        for i in range(5):  # 2 lines a second: its baseline
            sock.sendall(b"usual line\nusual line\n")
            time.sleep(1.0)
        sock.sendall(b"burst line\n" * 400)
        flood = server.wait_log("anomaly", timeout=30,
                                where=lambda e: e.get("type") == "sender_flood" and e.get("key") == "127.0.0.7")
    # The baseline is lines per arrival second: on a loaded box a late wake-up can put two of the
    # 2-line sends in one second, so up to 4 (never near the burst's 400).
    assert flood["lines"] >= 200 and flood["factor"] >= 5.0 and 1.0 <= flood["baseline"] <= 4.0
    assert [e["type"] for e in server.command("EVENTS 100")["events"]].count("sender_flood") == 1
