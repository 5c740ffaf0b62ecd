"""sd_notify protocol against real AF_UNIX datagram sockets (filesystem path and abstract)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from logtallyd.daemon import sdnotify

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def path_socket() -> Iterator[tuple[str, socket.socket]]:
    # A short directory: sun_path holds at most 107 bytes, pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    name = f"logtally-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    yield "@" + name, sock
    sock.close()


def test_path_socket_receives_ready_and_status(path_socket: tuple[str, socket.socket]) -> None:
    path, sock = path_socket
    assert sdnotify.notify(sdnotify.READY, sdnotify.status("1200 lines/s"), environ={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=1200 lines/s"


def test_abstract_socket_receives_stopping(abstract_socket: tuple[str, socket.socket]) -> None:
    name, sock = abstract_socket
    assert sdnotify.notify(sdnotify.STOPPING, environ={"NOTIFY_SOCKET": name})
    assert sock.recv(4096) == b"STOPPING=1"


def test_reloading_carries_monotonic_usec(abstract_socket: tuple[str, socket.socket]) -> None:
    name, sock = abstract_socket
    assert sdnotify.notify(*sdnotify.reloading_lines(monotonic_ns=12_345_678_901), environ={"NOTIFY_SOCKET": name})
    assert sock.recv(4096) == b"RELOADING=1\nMONOTONIC_USEC=12345678"


def test_newlines_in_a_line_cannot_inject_assignments(path_socket: tuple[str, socket.socket]) -> None:
    path, sock = path_socket
    sdnotify.notify(sdnotify.status("a\nREADY=1"), environ={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"STATUS=a READY=1"


def test_unset_is_a_silent_no_op() -> None:
    assert sdnotify.notify(sdnotify.READY, environ={}) is False
    assert sdnotify.notify(sdnotify.READY, environ={"NOTIFY_SOCKET": ""}) is False


def test_missing_socket_is_logged_not_raised(tmp_path: Path) -> None:
    assert sdnotify.notify(sdnotify.READY, environ={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
    assert sdnotify.notify(sdnotify.READY, environ={"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_subprocess_notifies_through_inherited_environment(abstract_socket: tuple[str, socket.socket]) -> None:
    """The way systemd runs us: NOTIFY_SOCKET in the environment of another process."""
    name, sock = abstract_socket
    code = "from logtallyd.daemon import sdnotify; sdnotify.notify(sdnotify.READY); sdnotify.notify(sdnotify.STOPPING)"
    env = {**os.environ, "NOTIFY_SOCKET": name, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
    assert [sock.recv(4096), sock.recv(4096)] == [b"READY=1", b"STOPPING=1"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "x"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout(environ: dict[str, str], expected: float | None) -> None:
    assert sdnotify.watchdog_interval_s(environ, pid=4242) == expected


def test_watchdog_pid_defaults_to_this_process() -> None:
    env = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert sdnotify.watchdog_interval_s(env) == 1.0
