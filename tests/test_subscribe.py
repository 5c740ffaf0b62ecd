"""Publish/subscribe on the control port: topics, filters, lagging and stalled subscribers."""
from __future__ import annotations

import grp
import json
import os
import socket
import stat
import time
from typing import Iterator

import pytest

from tests.conftest import ServerProcess, send_tcp


def subscribe(server: ServerProcess, command: str, rcvbuf: int | None = None) -> tuple[socket.socket, "socket.SocketIO"]:
    """`command` on a TCP connection that sent AUTH first (`SUBSCRIBE tail` needs it)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(server.address("control"))
    sock.settimeout(15)
    f = sock.makefile("rb")
    sock.sendall(f"AUTH {server.token}\n".encode())
    assert json.loads(f.readline()) == {"auth": "ok"}
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


REFUSED = b'{"error":"auth required: send AUTH <token> first, or use the control Unix socket"}\n'


def test_unauthenticated_tail_over_tcp_is_refused(server: ServerProcess) -> None:
    with socket.create_connection(server.address("control"), timeout=15) as sock:
        f = sock.makefile("rb")
        sock.sendall(b"SUBSCRIBE tail\nSUBSCRIBE stats tail interval=5\nSUBSCRIBE anomalies\nPING\n")
        assert f.readline() == REFUSED
        assert f.readline() == REFUSED  # tail among other topics: the whole command is refused
        assert f.readline() == b'{"subscribed":["anomalies"]}\n'  # the open topics stay open
        assert f.readline() == b'{"pong":true}\n'
        send_tcp(server.address("tcp"), b"2025-01-30 12:00:00 ERROR [api] secret line\n")
        assert server.wait_received(1)["received"] == 1
        report = server.stats()
        assert report["subscribers"]["open"] == 1  # the anomalies subscriber only
        assert report["control"] == {"auth_ok": 0, "refused": {"auth_required": 2}}
        sock.sendall(b"AUTH not-the-token-at-all\n")  # one wrong guess ends the connection
        assert f.readline() == b'{"error":"auth failed"}\n'
        assert f.readline() == b""
    assert server.token not in "".join(server.raw_output)
    assert server.stats()["control"] == {"auth_ok": 0, "refused": {"auth_failed": 1, "auth_required": 2}}


def _subscribe_as(uid: int | None, groups: list[int], path: str) -> "socket.SocketIO":
    """`SUBSCRIBE tail` on the Unix socket from a forked child with that uid and groups (as root),
    or as ourselves; the child's lines (`EACCES` if it may not connect) come back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: syscalls only, then _exit, never back into pytest
        code = 1
        try:
            os.close(read_end)
            if uid is not None:
                os.setgroups(groups)
                os.setgid(groups[0])
                os.setuid(uid)
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(30)
            try:
                sock.connect(path)
            except PermissionError:
                os.write(write_end, b"EACCES\n")
            else:
                sock.sendall(b"SUBSCRIBE tail\n")
                stream = sock.makefile("rb")
                for _ in range(2):  # the answer, then one record
                    os.write(write_end, stream.readline())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    reader = os.fdopen(read_end, "rb")
    _CHILDREN.append(pid)
    return reader


_CHILDREN: list[int] = []


@pytest.fixture(autouse=True)
def _reap_children() -> Iterator[None]:
    yield
    while _CHILDREN:
        pid = _CHILDREN.pop()
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def test_tail_over_the_unix_socket_with_the_right_group_works(start_server, control_socket: str) -> None:
    root = os.geteuid() == 0
    try:  # as root, a group the unprivileged test user is not in; else our own
        group = grp.getgrnam("adm") if root else grp.getgrgid(os.getegid())
    except KeyError:  # Debian and Fedora have it (the systemd unit's default group): CI must not skip
        if os.environ.get("CI") == "true":
            pytest.fail("no adm group on this machine")
        pytest.skip("no adm group")
    server = start_server(f'[control]\nunix_socket = "{control_socket}"\nunix_group = "{group.gr_name}"\n')
    assert server.addresses["control_unix"] == control_socket
    info = os.stat(control_socket)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o660 and info.st_gid == group.gr_gid
    if root:
        nobody = 65534
        outsider = _subscribe_as(nobody, [nobody], control_socket)
        assert outsider.readline() == b"EACCES\n"  # not in the group: the file mode keeps it out
        member = _subscribe_as(nobody, [nobody, group.gr_gid], control_socket)
    else:
        member = _subscribe_as(None, [], control_socket)
    assert member.readline() == b'{"subscribed":["tail"]}\n'  # no AUTH on the socket
    send_tcp(server.address("tcp"), b"2025-01-30 12:00:00 ERROR [api] for the group\n")
    assert json.loads(member.readline())["message"] == "for the group"
    assert server.stats()["control"] == {"auth_ok": 0, "refused": {}}
