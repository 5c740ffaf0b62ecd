"""Control-port access against a real daemon: what is refused at start (an open TCP address without
a token, a token file others may read, a socket path in use), the Unix socket's file, and the
token on SIGHUP."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, ServerProcess
from tests.test_daemon_ops import LAUNCHER


def start_refused(tmp_path: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.toml"
    path.write_text('[rejects]\npath = ""\n' + config)
    return subprocess.run(
        [sys.executable, "-m", "logtallyd", "--config", str(path), "--tcp", "127.0.0.1:0", "--udp", "", "--http", "127.0.0.1:0", *args],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def token_file(tmp_path: Path, mode: int, token: str = "a-token-of-sixteen-or-more") -> Path:
    path = tmp_path / "control.token"
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


def unix_command(path: str, line: str) -> dict:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(path)
        sock.sendall(line.encode() + b"\n")
        return json.loads(sock.makefile("rb").readline())


def auth(server: ServerProcess, token: str) -> bytes:
    with socket.create_connection(server.address("control"), timeout=30) as sock:
        sock.sendall(f"AUTH {token}\n".encode())
        return sock.makefile("rb").readline()


def test_a_non_loopback_control_address_without_a_token_is_refused_at_start(tmp_path: Path) -> None:
    expected = ("control.listen = '0.0.0.0:0' is not a loopback address: anyone who can reach it could read every "
                "line (SUBSCRIBE tail) and start jobs; set control.token_file, or listen on 127.0.0.1")
    for config, args in (("", ["--control", "0.0.0.0:0"]), ('[control]\nlisten = "0.0.0.0:0"\n', [])):
        out = start_refused(tmp_path, config, *args)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().endswith(expected), out.stderr


def test_a_non_loopback_control_address_with_a_token_starts(start_server) -> None:
    server = start_server(extra_args=["--tcp", "127.0.0.1:0", "--udp", "", "--control", "0.0.0.0:0"])
    assert server.addresses["control"].startswith("0.0.0.0:")
    host, port = server.address("control")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"SUBSCRIBE tail\n")
        assert b"auth required" in sock.makefile("rb").readline()


def test_a_token_file_others_may_read_is_refused(tmp_path: Path) -> None:
    for mode, shown in ((0o644, "0644"), (0o602, "0602")):
        path = token_file(tmp_path, mode)
        out = start_refused(tmp_path, f'[control]\ntoken_file = "{path}"\n', "--control", "127.0.0.1:0")
        assert (out.returncode, out.stderr) == (2, (
            f"logtallyd: control.token_file = '{path}': other users may read or write it (mode {shown}); "
            "chmod 600 or 640\n"))
    path = token_file(tmp_path, 0o640, token="short")
    out = start_refused(tmp_path, f'[control]\ntoken_file = "{path}"\n', "--control", "127.0.0.1:0")
    assert out.stderr == f"logtallyd: control.token_file = '{path}': the token is shorter than 16 characters\n"
    assert "short" not in out.stderr.replace("shorter", "")  # the token itself is never printed


def test_the_socket_file_is_replaced_only_when_stale(start_server, control_socket: str, tmp_path: Path) -> None:
    # A regular file at the path is never removed.
    Path(control_socket).write_text("not a socket")
    out = start_refused(tmp_path, f'[control]\nunix_socket = "{control_socket}"\n', "--control", "127.0.0.1:0")
    assert out.returncode == 1 and "exists and is not a socket; not replacing it" in out.stdout
    assert Path(control_socket).read_text() == "not a socket"
    os.unlink(control_socket)
    # A socket file nobody listens on (a daemon that was killed) is replaced.
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(control_socket)
    leftover.close()
    server = start_server(f'[control]\nunix_socket = "{control_socket}"\nunix_mode = 0o600\n')
    assert stat.S_IMODE(os.stat(control_socket).st_mode) == 0o600
    assert unix_command(control_socket, "PING") == {"pong": True}
    # A live one is not: the second daemon fails and the first still answers.
    out = start_refused(tmp_path, f'[control]\nunix_socket = "{control_socket}"\n', "--control", "127.0.0.1:0")
    assert out.returncode == 1 and "another process is listening on it" in out.stdout
    assert unix_command(control_socket, "PING") == {"pong": True}
    # A clean stop removes the file.
    assert server.stop() == 0
    assert not os.path.exists(control_socket)


def test_idle_tcp_clients_at_the_cap_do_not_lock_the_unix_socket_out(start_server, control_socket: str) -> None:
    server = start_server(f'[control]\nunix_socket = "{control_socket}"\nmax_connections = 2\n')
    held = [socket.create_connection(server.address("control")) for _ in range(2)]
    try:
        third = socket.create_connection(server.address("control"))
        third.settimeout(30)
        assert b"too many control connections" in third.recv(1000)  # TCP is at its cap
        third.close()
        assert unix_command(control_socket, "PING") == {"pong": True}  # the Unix socket has its own
    finally:
        for sock in held:
            sock.close()


def test_sighup_reads_the_token_again_and_keeps_it_when_the_new_file_is_refused(start_server) -> None:
    server = start_server()
    assert auth(server, server.token) == b'{"auth":"ok"}\n'
    new = "the-second-token-0123456789"
    server.token_file.write_text(new + "\n")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("reloaded")
    assert auth(server, server.token) == b'{"error":"auth failed"}\n'
    assert auth(server, new) == b'{"auth":"ok"}\n'
    server.token_file.chmod(0o644)
    server.proc.send_signal(signal.SIGHUP)
    rejected = server.wait_log("reload_rejected")
    assert "other users may read or write it" in rejected["reason"]
    assert auth(server, new) == b'{"auth":"ok"}\n'
    assert server.token not in "".join(server.raw_output) and new not in "".join(server.raw_output)
    assert server.stats()["control"] == {"auth_ok": 3, "refused": {"auth_failed": 1}}


def test_failed_auths_are_throttled_at_the_limit(start_server) -> None:
    server = start_server("[control]\nauth_failures_per_minute = 2\n")
    assert [auth(server, "wrong-guess") for _ in range(2)] == [b'{"error":"auth failed"}\n'] * 2
    assert auth(server, server.token) == b'{"error":"auth refused: too many failed AUTHs in the last minute"}\n'
    assert server.stats()["control"] == {"auth_ok": 0, "refused": {"auth_failed": 2, "auth_throttled": 1}}


def test_socket_activation_serves_the_unit_s_unix_socket_trusted(start_server, control_socket: str) -> None:
    """logtallyd-control.socket passes loopback TCP and a Unix socket, both named "control"."""
    tcp = socket.create_server(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(control_socket)
    unix.listen(16)
    fds = (tcp.fileno(), unix.fileno())
    server = start_server(
        launcher=[sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), "control:control"],
        extra_args=["--tcp", "127.0.0.1:0", "--udp", ""], pass_fds=fds,
    )
    assert (server.address("control"), server.addresses["control_unix"]) == (tcp.getsockname(), control_socket)
    assert server.command("SUBSCRIBE tail")["error"].startswith("auth required")
    assert unix_command(control_socket, "SUBSCRIBE tail") == {"subscribed": ["tail"]}
    assert server.stop() == 0
    assert os.path.exists(control_socket)  # systemd's socket file: the daemon leaves it
    for sock in (tcp, unix):
        sock.close()


def test_an_inherited_open_control_socket_without_a_token_is_refused(start_server) -> None:
    control = socket.create_server(("0.0.0.0", 0))
    fds = (control.fileno(),)
    with pytest.raises(AssertionError, match="is not on loopback and control.token_file is not set"):
        start_server(
            launcher=[sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), "control"],
            extra_args=["--tcp", "127.0.0.1:0", "--udp", ""], pass_fds=fds, token=False,
        )
    control.close()
