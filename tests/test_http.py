"""The `[http]` listener's limits against a real daemon: the head limit on any read, the idle
timeout (before the first request and between requests), the connection cap, and idle scrapers
at a low descriptor limit leaving ingest alone."""
from __future__ import annotations

import socket
import sys
import time
import urllib.request
from typing import Any

from tests.conftest import ServerProcess, send_tcp


def get_metrics(server: ServerProcess) -> int:
    host, port = server.address("http")
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        return response.status


def closed_by_daemon(sock: socket.socket) -> bool:
    """Wait for the daemon to close `sock` (EOF or reset); True if it did."""
    sock.settimeout(30)
    try:
        return sock.recv(1 << 16) == b""
    except ConnectionResetError:
        return True


def wait_http(server: ServerProcess, check: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    figures = server.stats()["http_server"]
    while not check(figures) and time.monotonic() < deadline:
        time.sleep(0.05)
        figures = server.stats()["http_server"]
    return figures


def test_a_head_past_the_limit_in_one_read_is_refused(start_server) -> None:
    server = start_server('[http]\nlisten = "127.0.0.1:0"\n')
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 60_000 + b"\r\n\r\n"
    with socket.create_connection(server.address("http"), timeout=30) as sock:
        sock.sendall(head)  # the whole 60 KB head, blank line included, in one write
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n") and answer.endswith(b"request head too large\n")
    assert get_metrics(server) == 200
    assert wait_http(server, lambda f: f["open"] == 0) == {"open": 0, "total": 2, "closed_by": {"head_too_large": 1},
                                                              "responses_by_class": {"2xx": 1, "4xx": 1}}


def test_a_head_exactly_at_the_limit_is_answered(start_server) -> None:
    server = start_server('[http]\nlisten = "127.0.0.1:0"\nmax_head_bytes = 256\n')
    line = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: "  # RFC 9112 §3.2: an HTTP/1.1 request names its Host
    head = line + b"a" * (256 - len(line))
    assert len(head) == 256
    with socket.create_connection(server.address("http"), timeout=30) as sock:
        sock.sendall(head + b"\r\n\r\n")
        assert sock.recv(1 << 16).startswith(b"HTTP/1.1 200 OK\r\n")
    with socket.create_connection(server.address("http"), timeout=30) as sock:
        sock.sendall(head + b"a\r\n\r\n")
        assert sock.recv(1 << 16).startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_bytes_that_are_no_request_are_answered_400_and_counted(start_server) -> None:
    server = start_server('[http]\nlisten = "127.0.0.1:0"\n')
    for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n", b"GET /metrics HTTP/1.1\r\n\r\n"):  # TLS, no Host
        with socket.create_connection(server.address("http"), timeout=30) as sock:
            sock.sendall(garbage)
            answer = b""
            while chunk := sock.recv(1 << 16):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert wait_http(server, lambda f: f["open"] == 0) == {"open": 0, "total": 2, "closed_by": {"bad_request": 2},
                                                              "responses_by_class": {"4xx": 2}}
    assert get_metrics(server) == 200
    assert not [e for e in server.logs if e.get("logger", "").startswith("uvicorn") or "Invalid HTTP" in e["event"]]


def test_an_idle_connection_is_closed(start_server) -> None:
    server = start_server('[http]\nlisten = "127.0.0.1:0"\nidle_timeout_s = 0.2\n')
    with socket.create_connection(server.address("http"), timeout=30) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the blank line
        assert closed_by_daemon(sock)
    assert wait_http(server, lambda f: f["open"] == 0) == {"open": 0, "total": 1, "closed_by": {"idle_timeout": 1},
                                                          "responses_by_class": {}}
    assert get_metrics(server) == 200


def test_a_kept_alive_connection_trickling_its_next_head_is_closed(start_server) -> None:
    server = start_server('[http]\nlisten = "127.0.0.1:0"\nidle_timeout_s = 0.5\n')
    with socket.create_connection(server.address("http"), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"ok":true}'):  # head and body may come in two reads
            answer += sock.recv(1 << 16)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")  # and kept alive: no close after it
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # the next head, never finished
        assert closed_by_daemon(sock)
    assert wait_http(server, lambda f: f["open"] == 0) == {"open": 0, "total": 1, "closed_by": {"idle_timeout": 1},
                                                          "responses_by_class": {"2xx": 1}}


def test_connections_past_the_cap_are_closed_at_once(start_server) -> None:
    server = start_server('[http]\nlisten = "127.0.0.1:0"\nmax_connections = 2\nidle_timeout_s = 3600\n')
    held = [socket.create_connection(server.address("http"), timeout=30) for _ in range(2)]
    wait_http(server, lambda f: f["open"] == 2)
    with socket.create_connection(server.address("http"), timeout=30) as third:
        assert closed_by_daemon(third)
    assert wait_http(server, lambda f: f["closed_by"]) == {"open": 2, "total": 2, "closed_by": {"max_connections": 1},
                                                        "responses_by_class": {}}
    for sock in held:
        sock.close()
    wait_http(server, lambda f: f["open"] == 0)
    assert get_metrics(server) == 200


def test_idle_scrapers_at_a_low_descriptor_limit_leave_ingest_alone(start_server) -> None:
    """150 idle HTTP connections against a daemon limited to 128 descriptors: the HTTP cap keeps
    descriptors for ingest, the ingest line is counted, and the low limit is logged at start."""
    limit = 128
    launcher = [sys.executable, "-c",
                "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, "
                f"({limit}, {limit})); os.execv(sys.argv[1], sys.argv[1:])"]
    server = start_server('[http]\nlisten = "127.0.0.1:0"\n[pipeline]\nworkers = 2\n', launcher=launcher)
    low = server.wait_log("fd_limit_low")
    assert low["limit"] == limit and low["needed"] == 64 + 1000 + 200 + 64
    idle = [socket.create_connection(server.address("http"), timeout=30) for _ in range(150)]
    try:
        figures = wait_http(server, lambda f: f["open"] + f["closed_by"].get("max_connections", 0) == 150)
        assert figures == {"open": 64, "total": 64, "closed_by": {"max_connections": 86}, "responses_by_class": {}}
        send_tcp(server.address("tcp"), b"one line that must be counted\n")
        assert server.wait_received(1)["received"] == 1
    finally:
        for sock in idle:
            sock.close()
