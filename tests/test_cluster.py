"""The fleet view end to end: real `logtallyd` nodes and a real `nats-server -js` on loopback.

A generated file (tests/test_one_answer's, with its known truth) split across three nodes' TCP
ports must give, on every node, `STATS all cluster` and `TOP ... cluster` equal to `analyze` of
the whole file; a node killed with -9 keeps what it published and shows down, then rejoins; a NATS
outage loses nothing once the server is back.
"""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import ROOT, NatsServer, ServerProcess, send_tcp
from tests.test_one_answer import (
    TOP_FIELDS, check_counts, check_latency, check_tops, comparable, generate, run_analyze,
)

pytestmark = pytest.mark.slow

CONFIG = ('[pipeline]\nworkers = 1\n[http]\nlisten = "127.0.0.1:0"\n'
          "[cluster]\ndown_after_s = 3.0\nreconnect_wait_s = 0.2\n")
NODES = ("web-1", "web-2", "web-3")


def start_node(start_server: Callable[..., ServerProcess], nats: NatsServer, name: str) -> ServerProcess:
    return start_server(CONFIG, extra_args=["--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0",
                                            "--nats", nats.url, "--node", name])


def wait_cluster(node: ServerProcess, check: Callable[[dict[str, Any]], bool], line: str = "STATS all cluster",
                 timeout: float = 60.0) -> dict[str, Any]:
    """Poll a cluster command on `node` until `check(answer)` holds; return the last answer."""
    deadline = time.monotonic() + timeout
    answer = node.command(line)
    while not check(answer) and time.monotonic() < deadline:
        time.sleep(0.1)
        answer = node.command(line)
    return answer


def split(lines: list[str], parts: int) -> list[bytes]:
    step = -(-len(lines) // parts)
    return [("\n".join(lines[i:i + step]) + "\n").encode() for i in range(0, len(lines), step)]


def rows(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["node"]: row for row in table["nodes"]}


def test_three_nodes_answer_as_analyze_of_the_whole_file(
        tmp_path: Path, nats_server: NatsServer, start_server: Callable[..., ServerProcess]) -> None:
    truth = generate(int(time.time()) - 3600)
    path = tmp_path / "app.log"
    path.write_text("\n".join(truth.lines) + "\n")
    (tmp_path / "config.toml").write_text(CONFIG)
    analyzed = run_analyze(path, tmp_path / "config.toml", "--workers", "1", "--top", "10")
    nodes = [start_node(start_server, nats_server, name) for name in NODES]
    chunks = split(truth.lines, len(nodes))
    for node, chunk in zip(nodes, chunks):
        send_tcp(node.address("tcp"), chunk)
    total = len(truth.lines)
    for node, chunk in zip(nodes, chunks):  # each node counted its own share exactly
        assert node.wait_received(chunk.count(b"\n"))["received"] == chunk.count(b"\n")
    for node in nodes:
        report = wait_cluster(node, lambda r: r["received"] >= total)
        assert report["nodes"] == list(NODES)
        check_counts(report, truth)
        check_latency(report["http"]["latency_ms"], truth)
        plain = {k: v for k, v in report.items() if k not in ("nodes", "watermark")}
        assert comparable(plain) == comparable(analyzed)
        tops = {field: node.command(f"TOP {field} 10 all cluster")["top"] for field in TOP_FIELDS}
        check_tops(tops, truth)
        assert tops["ip"] == analyzed["top"]["ip"]
        table = node.command("CLUSTER")
        assert {n: (r["up"], r["lines"]) for n, r in rows(table).items()} == {
            n: (True, c.count(b"\n")) for n, c in zip(NODES, chunks)}
    # The local view stays the node's own.
    assert nodes[0].stats()["received"] == chunks[0].count(b"\n")
    # The same answers over HTTP, the client and a subscription.
    host, port = nodes[1].address("http")
    with urllib.request.urlopen(f"http://{host}:{port}/api/v1/stats?cluster=true", timeout=10) as response:
        assert json.loads(response.read())["received"] == total
    with urllib.request.urlopen(f"http://{host}:{port}/api/v1/top/ip?n=10&cluster=true", timeout=10) as response:
        assert json.loads(response.read())["top"] == analyzed["top"]["ip"]
    control = "%s:%d" % nodes[2].address("control")
    out = subprocess.run([sys.executable, "-m", "logtally", "--control", control, "--json", "stats", "--cluster"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout)["received"] == total
    out = subprocess.run([sys.executable, "-m", "logtally", "--control", control, "cluster"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert all(name in out.stdout for name in NODES) and "DOWN" not in out.stdout
    with socket.create_connection(nodes[0].address("control"), timeout=10) as sock:
        sock.sendall(b"SUBSCRIBE stats cluster interval=0.5\n")
        reader = sock.makefile("rb")
        assert json.loads(reader.readline()) == {"subscribed": ["stats.cluster"]}
        message = json.loads(reader.readline())
        assert (message["type"], message["cluster"], message["received"]) == ("stats", True, total)


def test_a_killed_node_keeps_what_it_published_goes_down_and_rejoins(
        nats_server: NatsServer, start_server: Callable[..., ServerProcess]) -> None:
    truth = generate(int(time.time()) - 3600)
    first, second, third = split(truth.lines, 3)
    a, b = (start_node(start_server, nats_server, name) for name in NODES[:2])
    c = start_node(start_server, nats_server, "web-3")
    send_tcp(a.address("tcp"), first)
    send_tcp(c.address("tcp"), second)
    c.wait_received(second.count(b"\n"))
    wait_cluster(a, lambda t: rows(t).get("web-3", {}).get("lines") == second.count(b"\n"), "CLUSTER")
    c.stop(signal.SIGKILL)
    table = wait_cluster(a, lambda t: not rows(t)["web-3"]["up"], "CLUSTER", timeout=30)
    assert rows(table)["web-3"]["up"] is False and rows(table)["web-1"]["up"] is True
    # What it published stays in the view of both survivors.
    for node in (a, b):
        report = wait_cluster(node, lambda r: r["received"] == first.count(b"\n") + second.count(b"\n"))
        assert report["received"] == first.count(b"\n") + second.count(b"\n")
        assert "web-3" in report["nodes"]
    # A live node is no longer held back by the dead one's watermark.
    assert table["watermark"] == rows(table)["web-1"]["last_second"]
    c2 = start_node(start_server, nats_server, "web-3")
    send_tcp(c2.address("tcp"), third)
    total = len(truth.lines)
    table = wait_cluster(a, lambda t: rows(t)["web-3"]["up"] and rows(t)["web-3"]["lines"] == total - first.count(b"\n"),
                         "CLUSTER")
    assert rows(table)["web-3"]["restarts"] == 1
    report = wait_cluster(c2, lambda r: r["received"] >= total)  # a restarted view replays the stream
    check_counts(report, truth)


def test_an_archive_replay_after_kill_9_is_not_sent_to_the_fleet_again(
        tmp_path: Path, nats_server: NatsServer, start_server: Callable[..., ServerProcess]) -> None:
    """The restarted node counts its archived lines again (its local totals need them), but the
    fleet had them from the process that archived them: the cluster view counts them once."""
    durable = (f'[state]\ndirectory = "{tmp_path / "state"}"\nsnapshot_interval_s = 3600\n'
               f'[archive]\nenabled = true\ndirectory = "{tmp_path / "archive"}"\nfsync = "batch"\n')
    args = ["--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0", "--nats", nats_server.url]
    first = start_server(CONFIG + durable, extra_args=[*args, "--node", "web-1"])
    other = start_node(start_server, nats_server, "web-2")
    lines = generate(int(time.time()) - 3600).lines[:3000]
    send_tcp(first.address("tcp"), ("\n".join(lines) + "\n").encode())
    first.wait_received(len(lines))
    wait_cluster(other, lambda r: r["received"] == len(lines))
    first.stop(signal.SIGKILL)
    again = start_server(CONFIG + durable, extra_args=[*args, "--node", "web-1"])
    assert again.wait_log("archive_replayed")["lines"] == len(lines)
    assert again.stats()["received"] == len(lines)  # the snapshot at start held none: all replayed
    wait_cluster(other, lambda t: rows(t)["web-1"]["restarts"] == 1 and rows(t)["web-1"]["up"], "CLUSTER")
    time.sleep(2.0)  # seconds the restarted node sealed since: heartbeats, no lines
    assert other.command("STATS all cluster")["received"] == len(lines)
    assert rows(other.command("CLUSTER"))["web-1"]["lines"] == len(lines)
    assert again.stats()["cluster"]["replayed_lines"] == len(lines)
    assert wait_cluster(again, lambda r: r["received"] == len(lines))["received"] == len(lines)


def test_durable_publishing_sends_what_a_snapshot_counted_once_across_kill_9(
        tmp_path: Path, nats_server: NatsServer, start_server: Callable[..., ServerProcess]) -> None:
    """`publish = "durable"`: seconds go out once a snapshot counts them. Killed between two
    snapshots, the node had sent the lines of the first and none after it; restarted, it replays
    those after it from the archive and sends them: the fleet has each line once."""
    durable = (f'[state]\ndirectory = "{tmp_path / "state"}"\nsnapshot_interval_s = 1\n'
               f'[archive]\nenabled = true\ndirectory = "{tmp_path / "archive"}"\nfsync = "batch"\n')
    args = ["--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0", "--nats", nats_server.url,
            "--node", "web-1"]
    config = CONFIG.replace("[cluster]\n", '[cluster]\npublish = "durable"\n') + durable
    first = start_server(config, extra_args=args)
    other = start_node(start_server, nats_server, "web-2")
    lines = generate(int(time.time()) - 3600).lines[:4000]
    send_tcp(first.address("tcp"), ("\n".join(lines[:2000]) + "\n").encode())
    first.wait_received(2000)
    wait_cluster(other, lambda r: r["received"] == 2000)  # once a snapshot counted them
    send_tcp(first.address("tcp"), ("\n".join(lines[2000:]) + "\n").encode())
    first.wait_received(4000)
    first.stop(signal.SIGKILL)  # some of the last 2000 snapshotted and sent, the rest neither
    again = start_server(config, extra_args=args)
    assert again.stats()["received"] == 4000  # snapshot + archive replay
    report = wait_cluster(other, lambda r: r["received"] >= 4000)
    time.sleep(2.0)
    assert other.command("STATS all cluster")["received"] == 4000, (report, again.stats()["cluster"])
    assert again.stats()["cluster"]["replayed_lines"] == 0  # durable: nothing replayed was sent before


def test_a_nats_outage_loses_nothing(nats_server: NatsServer, start_server: Callable[..., ServerProcess]) -> None:
    truth = generate(int(time.time()) - 3600)
    chunks = split(truth.lines, 4)
    a, b = (start_node(start_server, nats_server, name) for name in NODES[:2])
    send_tcp(a.address("tcp"), chunks[0])
    wait_cluster(b, lambda r: r["received"] == chunks[0].count(b"\n"))
    nats_server.stop()
    send_tcp(a.address("tcp"), chunks[1])
    send_tcp(b.address("tcp"), chunks[2])
    # Ingest goes on: local counts are exact while NATS is away.
    assert a.wait_received(chunks[0].count(b"\n") + chunks[1].count(b"\n"))["received"] == (
        chunks[0].count(b"\n") + chunks[1].count(b"\n"))
    assert b.wait_received(chunks[2].count(b"\n"))["received"] == chunks[2].count(b"\n")
    time.sleep(1.5)  # a few seconds sealed while the bus is down
    assert a.stats()["cluster"]["buffered"] >= 1
    nats_server.start()
    send_tcp(b.address("tcp"), chunks[3])
    total = len(truth.lines)
    for node in (a, b):
        report = wait_cluster(node, lambda r: r["received"] >= total)
        check_counts(report, truth)
        figures = node.stats()["cluster"]
        assert figures["unpublished_seconds"] == 0 and figures["connected"] is True


def test_a_publish_only_node_feeds_the_view_it_does_not_keep(
        nats_server: NatsServer, start_server: Callable[..., ServerProcess]) -> None:
    lines = [f"2025-01-30 12:00:{i % 60:02d},000 INFO [svc] request {i}" for i in range(500)]
    viewer = start_node(start_server, nats_server, "viewer")
    quiet = start_server(CONFIG + "view = false\n", extra_args=[
        "--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0", "--nats", nats_server.url, "--node", "edge"])
    send_tcp(quiet.address("tcp"), ("\n".join(lines) + "\n").encode())
    report = wait_cluster(viewer, lambda r: r["received"] >= len(lines))
    assert (report["received"], report["nodes"]) == (len(lines), ["edge"])
    assert "error" in quiet.command("STATS all cluster")
    assert "error" in quiet.command("EVENTS 10 cluster")
    figures = quiet.stats()["cluster"]
    assert figures["applied"] == 0
    assert "detect" not in figures and "events" not in figures  # no fleet detectors on it
    # Its feeds reach the view's fleet detectors all the same.
    assert viewer.stats()["cluster"]["detect"]["records"] == len(lines)
