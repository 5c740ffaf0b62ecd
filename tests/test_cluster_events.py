"""Fleet-wide detectors end to end: three real `logtallyd` nodes and a real `nats-server -js`.

An error burst split across the nodes' TCP ports, too small on each node for its own detectors,
is one `error_spike` for the fleet: listed once by `EVENTS cluster` on every node, stored once in
the events stream, pushed once to a `SUBSCRIBE anomalies cluster` client; a view killed with -9
and started again replays the stream without publishing the event a second time.
"""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import urllib.request
from typing import Any, Callable

import pytest

from tests.conftest import NatsServer, ServerProcess, send_tcp
from tests.test_cluster import wait_cluster

pytestmark = pytest.mark.slow

NODES = ("web-1", "web-2", "web-3")
PER_NODE = 20  # errors each node sees: below the threshold alone, above it three together
CONFIG = ('[pipeline]\nworkers = 1\n[http]\nlisten = "127.0.0.1:0"\n'
          "[cluster]\ndown_after_s = 30.0\nreconnect_wait_s = 0.2\n"
          # A window longer than the test: the spike does not resolve meanwhile.
          "[detect.spike]\nwindow_s = 300\nthreshold = 45\nresolve_below = 5\n"
          "overall_threshold = 100000\noverall_resolve_below = 5\n"
          "[detect.zscore]\nenabled = false\n[detect.newtemplate]\nenabled = false\n")


def start_node(start_server: Callable[..., ServerProcess], nats: NatsServer, name: str) -> ServerProcess:
    return start_server(CONFIG, extra_args=["--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0",
                                            "--nats", nats.url, "--node", name])


def lines(level: str, n: int, service: str = "api") -> bytes:
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f",{int(now % 1 * 1000):03d}"
    return "".join(f"{stamp} {level} [{service}] request failed id={i}\n" for i in range(n)).encode()


def spikes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "error_spike"]


def stored_events(url: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(stream sequence, Nats-Msg-Id, event) of every message in LOGTALLY_EVENTS."""
    async def read() -> list[tuple[int, str, dict[str, Any]]]:
        import nats

        client = await nats.connect(url)
        try:
            js = client.jetstream()
            state = (await js.stream_info("LOGTALLY_EVENTS")).state
            found = []
            for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                msg = await js.get_msg("LOGTALLY_EVENTS", seq)
                found.append((seq, (msg.headers or {}).get("Nats-Msg-Id", ""), json.loads(msg.data)))
            return found
        finally:
            await client.close()

    return asyncio.run(read())


def test_a_burst_no_node_sees_alone_is_one_fleet_event_published_once(
        nats_server: NatsServer, start_server: Callable[..., ServerProcess]) -> None:
    nodes = [start_node(start_server, nats_server, name) for name in NODES]
    # Every node known to the fleet detectors with a watermark of its own before the burst, so
    # each holds them back until its share of the burst is in.
    for node in nodes:
        send_tcp(node.address("tcp"), lines("INFO", 1))
    for node in nodes:
        wait_cluster(node, lambda t: len(t["nodes"]) == 3 and all(r["detect_watermark"] for r in t["nodes"]),
                     "CLUSTER")
    watcher = socket.create_connection(nodes[0].address("control"), timeout=10)
    watcher.sendall(b"SUBSCRIBE anomalies cluster\n")
    reader = watcher.makefile("rb")
    assert json.loads(reader.readline()) == {"subscribed": ["anomalies.cluster"]}

    for node in nodes:
        send_tcp(node.address("tcp"), lines("ERROR", PER_NODE))
    for node in nodes:
        node.wait_received(1 + PER_NODE)
    answers = [wait_cluster(node, lambda a: bool(spikes(a["events"])), "EVENTS 100 cluster") for node in nodes]
    for node, answer in zip(nodes, answers):
        [spike] = spikes(answer["events"])
        assert (spike["key"], spike["count"], spike["threshold"]) == ("api", 3 * PER_NODE, 45)
        assert answer["nodes"] == list(NODES)
        assert answer["watermark"] > spike["ts"]
        # No node's own detectors fired: each saw 20 errors, under the threshold of 45.
        assert spikes(node.command("EVENTS 100")["events"]) == []
    stored = stored_events(nats_server.url)
    [(seq, ident, event)] = [s for s in stored if s[2]["type"] == "error_spike"]
    assert event == spike
    # Every view found it; the stream took one publish, the others were told it had it.
    figures = [wait_cluster(node, lambda f: f["cluster"]["events"]["stored"] == len(stored)
                            and f["cluster"]["events"]["queued"] == 0, "STATS")["cluster"] for node in nodes]
    assert all(f["detect"]["events_error_spike"] == 1 for f in figures)
    assert sum(f["events"]["published"] for f in figures) == len(stored)
    assert sum(f["events"]["published"] + f["events"]["duplicates"] + f["events"]["skipped"]
               for f in figures) == 3 * len(stored)
    assert all((f["detect"]["records"], f["detect"].get("late_lines", 0)) == (3 * (1 + PER_NODE), 0)
               for f in figures)  # every line, on every view, on time
    # The subscriber got it once, marked as the fleet's. Node 0 has read the whole stream, and
    # pushes as it reads: anything it pushed is in the socket now.
    watcher.settimeout(2.0)
    pushed: list[dict[str, Any]] = []
    try:
        while line := reader.readline():
            pushed.append(json.loads(line))
    except (TimeoutError, OSError):
        pass
    watcher.close()
    assert [(e["type"], e["cluster"], e["ts"]) for e in spikes(pushed)] == [("error_spike", True, spike["ts"])]
    # Over HTTP too.
    host, port = nodes[1].address("http")
    with urllib.request.urlopen(f"http://{host}:{port}/api/v1/events?cluster=true", timeout=10) as response:
        assert spikes(json.loads(response.read())["events"]) == [spike]

    # A view killed and started again replays both streams: it finds the spike again, and knows
    # the stream holds it.
    nodes[2].stop(signal.SIGKILL)
    again = start_node(start_server, nats_server, NODES[2])
    answer = wait_cluster(again, lambda a: bool(spikes(a["events"])), "EVENTS 100 cluster")
    assert spikes(answer["events"]) == [spike]
    figures = wait_cluster(again, lambda f: f["cluster"]["detect"].get("events_error_spike") == 1
                           and f["cluster"]["events"]["queued"] == 0, "STATS")["cluster"]
    assert figures["detect"]["events_error_spike"] == 1
    assert figures["events"]["skipped"] + figures["events"]["duplicates"] >= 1
    assert stored_events(nats_server.url) == stored  # not one message more
    assert spikes(nodes[0].command("EVENTS 100 cluster")["events"]) == [spike]
