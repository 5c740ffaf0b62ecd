"""Socket activation: listening sockets handed to a real subprocess the way systemd does it.

systemd puts the fds at 3, 4, ... and sets LISTEN_PID to the pid of the process it execs. The
test does the same with a tiny `python -c` wrapper: it moves the passed fds to 3.., sets
LISTEN_PID=os.getpid() and execs the child (exec keeps the pid), then ships lines through.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from logtallyd.daemon import activation

ROOT = Path(__file__).resolve().parents[1]

WRAPPER = r"""
import fcntl, os, sys
sources = [int(fd) for fd in os.environ.pop("_TEST_FDS").split(",")]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in sources]
for fd in sources:
    os.close(fd)
for offset, fd in enumerate(high):
    os.dup2(fd, 3 + offset)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
"""

CHILD = r"""
import json, os, socket, sys
from logtallyd.daemon.activation import ENV_VARS, inherited_listeners, inherited_sockets, is_listening, listener_role, socket_kind
if sys.argv[1] == "listeners":
    pairs = inherited_listeners()
    print(json.dumps({"roles": [role for role, _ in pairs], "kinds": [socket_kind(s) for _, s in pairs],
                      "open_fds": sorted(fd for fd in (3, 4, 5, 6) if os.path.exists(f"/proc/self/fd/{fd}"))}))
    sys.exit(0)
sockets = inherited_sockets()
print(json.dumps({
    "names": [name for name, _ in sockets],
    "fds": [sock.fileno() for _, sock in sockets],
    "kinds": [socket_kind(sock) for _, sock in sockets],
    "roles": [listener_role(name, sock) for name, sock in sockets],
    "listening": [socket_kind(sock) == "tcp" and is_listening(sock) for _, sock in sockets],
    "cloexec": [not os.get_inheritable(sock.fileno()) for _, sock in sockets],
    "env_left": [name for name in ENV_VARS if name in os.environ],
}), flush=True)
if sys.argv[1] == "ship":
    by_name = {listener_role(name, sock): sock for name, sock in sockets}
    conn, _ = by_name["ingest-tcp"].accept()
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    print(json.dumps({"tcp_lines": data.count(b"\n"), "tcp_bytes": len(data)}), flush=True)
    udp = by_name["ingest-udp"]
    udp.settimeout(10)
    datagrams = [udp.recv(65536) for _ in range(int(sys.argv[2]))]
    print(json.dumps({"udp": len(datagrams), "udp_bytes": sum(map(len, datagrams))}), flush=True)
"""


def spawn(fds: list[int], names: str | None, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LISTEN_FDS": str(len(fds)), "_TEST_FDS": ",".join(map(str, fds))}
    env.pop("LISTEN_FDNAMES", None)
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    return subprocess.Popen(
        [sys.executable, "-c", WRAPPER, CHILD, *args],
        env=env,
        pass_fds=fds,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


def listeners() -> tuple[socket.socket, socket.socket, socket.socket]:
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    control = socket.create_server(("127.0.0.1", 0))
    return tcp, udp, control


def test_lines_flow_through_inherited_tcp_and_udp_sockets() -> None:
    tcp, udp, control = listeners()
    tcp_addr, udp_addr = tcp.getsockname(), udp.getsockname()
    n_udp = 100
    # The names systemd gives with systemd/logtallyd.socket + logtallyd-control.socket.
    child = spawn([tcp.fileno(), udp.fileno(), control.fileno()], "ingest:ingest:control", "ship", str(n_udp))
    for sock in (tcp, udp, control):
        sock.close()  # from here on only the child holds the listeners
    assert child.stdout is not None
    report = json.loads(child.stdout.readline())
    assert report == {
        "names": ["ingest", "ingest", "control"],
        "fds": [3, 4, 5],
        "kinds": ["tcp", "udp", "tcp"],
        "roles": ["ingest-tcp", "ingest-udp", "control"],
        "listening": [True, False, True],
        "cloexec": [True, True, True],
        "env_left": [],
    }
    lines = [f"<14>1 2026-11-24T21:00:00Z host app - - - line {i}\n".encode() for i in range(5000)]
    with socket.create_connection(tcp_addr) as conn:
        conn.sendall(b"".join(lines))
    assert json.loads(child.stdout.readline()) == {"tcp_lines": 5000, "tcp_bytes": sum(map(len, lines))}
    datagrams = [f"<14>udp message {i}".encode() for i in range(n_udp)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for datagram in datagrams:
            sender.sendto(datagram, udp_addr)
    assert json.loads(child.stdout.readline()) == {"udp": n_udp, "udp_bytes": sum(map(len, datagrams))}
    assert child.wait(timeout=30) == 0
    child.stdout.close()


def test_missing_or_inconsistent_names_become_unknown() -> None:
    tcp, udp, control = listeners()
    for names in (None, "only-one"):
        child = spawn([tcp.fileno(), udp.fileno()], names, "report")
        out, _ = child.communicate(timeout=30)
        report = json.loads(out)
        assert report["names"] == ["unknown", "unknown"]
        assert report["kinds"] == ["tcp", "udp"]
    for sock in (tcp, udp, control):
        sock.close()


def test_non_socket_fd_is_skipped() -> None:
    tcp = socket.create_server(("127.0.0.1", 0))
    read_end, write_end = os.pipe()
    child = spawn([read_end, tcp.fileno()], "fifo:ingest-tcp", "report")
    out, _ = child.communicate(timeout=30)
    *logged, last = out.splitlines()
    report = json.loads(last)
    assert (report["names"], report["fds"]) == (["ingest-tcp"], [4])
    assert any("listen_fd_not_a_socket" in line for line in logged)  # structlog's default: stdout
    for fd in (read_end, write_end):
        os.close(fd)
    tcp.close()


def test_variables_for_another_pid_are_ignored_and_removed() -> None:
    environ = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b", "OTHER": "x"}
    assert activation.inherited_sockets(environ) == []
    assert environ == {"OTHER": "x"}


def test_not_activated_or_garbage_gives_nothing() -> None:
    assert activation.inherited_sockets({}) == []
    environ = {"LISTEN_PID": "me", "LISTEN_FDS": "1"}
    assert activation.inherited_sockets(environ) == []
    assert environ == {}
    environ = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}
    assert activation.inherited_sockets(environ) == []
    assert environ == {}


def test_listener_role_from_name_and_type() -> None:
    tcp, udp, _control = listeners()
    try:
        assert activation.listener_role("ingest", tcp) == "ingest-tcp"  # logtallyd.socket: one name, two types
        assert activation.listener_role("ingest", udp) == "ingest-udp"
        assert activation.listener_role("logtallyd.socket", udp) == "ingest-udp"
        assert activation.listener_role("unknown", tcp) == "ingest-tcp"
        assert activation.listener_role("ingest-tcp", tcp) == "ingest-tcp"
        assert activation.listener_role("ingest-udp", udp) == "ingest-udp"
        assert activation.listener_role("control", tcp) == "control"
        assert activation.listener_role("control", udp) is None  # wrong type for the role
        with socket.socket(socket.AF_UNIX) as unix:  # logtallyd-control.socket's second ListenStream=
            assert activation.listener_role("control", unix) == "control-unix"
            assert activation.listener_role("control-unix", unix) == "control-unix"
            assert activation.listener_role("control-unix", tcp) is None
        assert activation.listener_role("ingest-udp", tcp) is None
        assert activation.listener_role("metrics-typo", tcp) is None
    finally:
        for sock in (tcp, udp, _control):
            sock.close()


def test_inherited_listeners_keys_by_role_and_drops_misfits() -> None:
    tcp, udp, control = listeners()
    odd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a UDP socket named "control": no role fits
    fds = [tcp.fileno(), udp.fileno(), control.fileno(), odd.fileno()]
    child = spawn(fds, "ingest:ingest:control:control", "listeners")
    out, _ = child.communicate(timeout=30)
    *logged, last = out.splitlines()
    assert json.loads(last) == {"roles": ["ingest-tcp", "ingest-udp", "control"], "kinds": ["tcp", "udp", "tcp"],
                                "open_fds": [3, 4, 5]}  # fd 6 was closed
    assert any("listen_fd_ignored" in line for line in logged)
    for sock in (tcp, udp, control, odd):
        sock.close()
