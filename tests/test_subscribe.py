"""Publish/subscribe on the control port: topics, filters, lagging and stalled subscribers."""
from __future__ import annotations

import json
import socket
import time

from tests.conftest import ServerProcess, send_tcp


def subscribe(server: ServerProcess, command: str, rcvbuf: int | None = None) -> tuple[socket.socket, "socket.SocketIO"]:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(server.address("control"))
    sock.settimeout(15)
    f = sock.makefile("rb")
    sock.sendall(command.encode() + b"\n")
    first = json.loads(f.readline())
    assert "subscribed" in first, first
    return sock, f


def test_stats_topic_streams_snapshots_at_the_interval(server: ServerProcess) -> None:
    sock, f = subscribe(server, "SUBSCRIBE stats interval=0.2")
    started = time.monotonic()
    messages = [json.loads(f.readline()) for _ in range(4)]
    elapsed = time.monotonic() - started
    assert all(m["type"] == "stats" and "received" in m for m in messages)
    assert 0.4 < elapsed < 5
    sock.close()


def test_tail_filter_gets_only_matching_records(server: ServerProcess) -> None:
    sock, f = subscribe(server, "SUBSCRIBE tail level>=error service=api")
    lines = []
    for i in range(30):
        level = "ERROR" if i % 3 == 0 else "INFO"
        service = "api" if i % 2 == 0 else "web"
        lines.append(f"2025-01-30 12:00:{i:02d} {level} [{service}] event {i}")
    send_tcp(server.address("tcp"), ("\n".join(lines) + "\n").encode())
    expected = [f"event {i}" for i in range(30) if i % 3 == 0 and i % 2 == 0]
    got = [json.loads(f.readline()) for _ in expected]
    assert [g["message"] for g in got] == expected
    assert all(g["type"] == "record" and g["level"] == "ERROR" and g["service"] == "api" for g in got)
    sock.close()


def test_unsubscribe_and_disconnect_clean_up(server: ServerProcess) -> None:
    sock, f = subscribe(server, "SUBSCRIBE stats interval=0.1")
    assert json.loads(f.readline())["type"] == "stats"
    assert server.stats()["subscribers"]["open"] == 1
    sock.sendall(b"UNSUBSCRIBE\n")
    while True:  # stats lines already queued may come before the answer
        message = json.loads(f.readline())
        if "unsubscribed" in message:
            break
    sock.sendall(b"PING\n")
    assert json.loads(f.readline()) == {"pong": True}
    assert server.stats()["subscribers"]["open"] == 0
    # A quiet topic: the server must notice the close itself, not at its next write.
    sock2, f2 = subscribe(server, "SUBSCRIBE anomalies")
    assert server.stats()["subscribers"]["open"] == 1
    f2.close()
    sock2.close()  # the makefile() reader held the socket open until closed too
    deadline = time.monotonic() + 5
    while server.stats()["subscribers"]["open"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["subscribers"]["open"] == 0
    sock.close()


def test_slow_subscriber_gets_lagged_notice_and_every_record_is_accounted(start_server) -> None:
    server = start_server("[control]\nsubscriber_queue = 20\nstalled_subscriber_s = 60\n[pipeline]\nbatch_lines = 500\n")
    sock, f = subscribe(server, "SUBSCRIBE tail", rcvbuf=4096)
    n = 3000
    pad = "x" * 4000  # more than the kernel buffers between us hold
    lines = "".join(f"2025-01-30 12:00:00 INFO [svc] record {i} {pad}\n" for i in range(n))
    send_tcp(server.address("tcp"), lines.encode())
    server.wait_received(n)
    time.sleep(0.5)
    seen, dropped = 0, 0
    sock.settimeout(3)
    try:
        while seen + dropped < n:
            message = json.loads(f.readline())
            if message["type"] == "lagged":
                dropped += message["dropped"]
            else:
                seen += 1
    except (TimeoutError, socket.timeout):
        pass
    assert dropped > 0
    assert seen + dropped == n
    assert server.stats()["subscribers"]["dropped_messages"] == dropped
    sock.close()


def test_stalled_subscriber_is_disconnected(start_server) -> None:
    server = start_server("[control]\nsubscriber_queue = 10\nstalled_subscriber_s = 0.5\n")
    sock, f = subscribe(server, "SUBSCRIBE tail", rcvbuf=4096)
    pad = "y" * 4000  # more than the kernel buffers between us hold
    data = "".join(f"2025-01-30 12:00:00 INFO [svc] record {i} {pad}\n" for i in range(3000)).encode()
    send_tcp(server.address("tcp"), data)
    deadline = time.monotonic() + 15
    report = server.stats()
    while report["subscribers"]["disconnected_stalled"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        report = server.stats()
    assert report["subscribers"]["disconnected_stalled"] == 1
    assert report["subscribers"]["open"] == 0
    assert server.wait_received(3000)["received"] == 3000  # ingestion went on regardless
    sock.close()
