"""Shared fixtures: a real `logtallyd` subprocess on ephemeral loopback ports, and the corpus path."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


def require_tool(tool: str, *fallbacks: str) -> str:
    """The tool's path (on PATH, else the first fallback path that exists); a missing tool fails
    under CI, which installs it (.ci/run), and skips elsewhere."""
    path = shutil.which(tool) or next((p for p in fallbacks if Path(p).exists()), None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed; .ci/run installs it")
        pytest.skip(f"{tool} not installed")
    return path


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition, parsed by prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    found = [s.value for family in text_string_to_metric_families(text) for s in family.samples
             if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def with_token_file(config_text: str, token_file: Path) -> str:
    """`config_text` with `[control] token_file` set (TOML allows one `[control]` table)."""
    line = f'token_file = "{token_file}"'
    if "[control]" in config_text:
        return config_text.replace("[control]\n", f"[control]\n{line}\n", 1)
    return f"{config_text.rstrip()}\n[control]\n{line}\n"


def ephemeral_http(config_text: str, args: list[str]) -> list[str]:
    """`args` with `--http 127.0.0.1:0` unless they name the HTTP listener or the config sets it
    to an ephemeral port or off: a fixed port (the shipped 127.0.0.1:5142) would make two test
    daemons collide."""
    found = re.search(r"^\[http\][^\[]*^listen\s*=\s*\"([^\"]*)\"", config_text, re.M)
    if "--http" in args or (found and (found.group(1) == "" or found.group(1).endswith(":0"))):
        return args
    return [*args, "--http", "127.0.0.1:0"]


class ServerProcess:
    """`logtallyd` started as a subprocess; its JSON log lines are collected as they come.

    It has an AUTH token (`self.token`, in `self.token_file`) unless `token=False` or the config
    sets `token_file` itself; `command(line, auth=True)` sends AUTH first.
    """

    def __init__(self, workdir: Path, config_text: str = "", extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = (),
                 launcher: list[str] | None = None, token: bool = True) -> None:
        self.workdir = workdir
        self.config_path = workdir / "config.toml"
        base = f'[rejects]\npath = "{workdir / "rejects.log"}"\n'
        if "[rejects]" in config_text:
            base = ""
        self.token_file = workdir / "control.token"
        self.token = secrets.token_hex(16)
        self.token_file.write_text(self.token + "\n")
        self.token_file.chmod(0o600)
        if token and "token_file" not in config_text:
            config_text = with_token_file(config_text, self.token_file)
        self.config_path.write_text(base + config_text)
        args = [sys.executable, "-m", "logtallyd", "--config", str(self.config_path)]
        if extra_args is None:
            extra_args = ["--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--control", "127.0.0.1:0"]
        extra_args = ephemeral_http(config_text, extra_args)
        self.logs: list[dict[str, Any]] = []
        self.raw_output: list[str] = []
        self._cond = threading.Condition()
        # `[state] directory = "auto"` by default: each daemon keeps its snapshots in its own
        # workdir, never in the user's ~/.local/state or a systemd STATE_DIRECTORY.
        inherited = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
        self.proc = subprocess.Popen(
            (launcher or []) + args + extra_args,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**inherited, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(workdir / "xdg-state"), **(env or {})},
            pass_fds=pass_fds,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        listening = self.wait_log("listening", timeout=30)
        self.addresses: dict[str, str] = {k: v for k, v in listening.items()
                                          if isinstance(v, str) and (":" in v or v.startswith("/"))}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.raw_output.append(line)
                try:
                    self.logs.append(json.loads(line))
                except ValueError:
                    pass
                self._cond.notify_all()

    def wait_log(self, event: str, timeout: float = 10.0, where: Callable[[dict], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for entry in self.logs:
                    if entry.get("event") == event and (where is None or where(entry)):
                        return entry
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"server exited ({self.proc.returncode}) before {event!r}:\n" + "".join(self.raw_output[-40:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {event!r} log within {timeout}s:\n" + "".join(self.raw_output[-40:]))
                self._cond.wait(min(left, 0.2))

    def address(self, name: str) -> tuple[str, int]:
        return split_address(self.addresses[name])

    def command(self, line: str, timeout: float = 10.0, auth: bool = False) -> dict[str, Any]:
        with socket.create_connection(self.address("control"), timeout=timeout) as sock:
            if auth:
                sock.sendall(f"AUTH {self.token}\n".encode())
                assert json.loads(_read_line(sock)) == {"auth": "ok"}
            sock.sendall(line.encode() + b"\n")
            return json.loads(_read_line(sock))

    def stats(self, window: str = "all") -> dict[str, Any]:
        return self.command(f"STATS {window}")

    def wait_received(self, n: int, timeout: float = 30.0) -> dict[str, Any]:
        """Poll STATS until `received` >= n; return STATS."""
        return self.wait_stats(lambda report: report["received"] >= n, timeout)

    def wait_stats(self, check: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """Poll STATS until `check(report)` holds or `timeout` passes; return the last STATS."""
        deadline = time.monotonic() + timeout
        report = self.stats()
        while not check(report) and time.monotonic() < deadline:
            time.sleep(0.05)
            report = self.stats()
        return report

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        return code


def _read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    return buf


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(config_text: str = "", **kwargs: Any) -> ServerProcess:
        workdir = tmp_path / f"server{len(started)}"
        workdir.mkdir()
        server = ServerProcess(workdir, config_text, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def control_socket() -> Iterator[str]:
    """A path for a control Unix socket: short (sun_path holds 107 bytes, pytest's tmp_path may be
    longer) and in a directory any user may enter, so the socket's own mode decides who connects."""
    directory = Path(tempfile.mkdtemp(prefix="logtally-"))
    directory.chmod(0o755)
    yield str(directory / "control.sock")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server()


def send_tcp(address: tuple[str, int], data: bytes) -> None:
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(30)
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass


class NatsServer:
    """A real `nats-server -js` on a loopback port with its own store directory.

    The first start picks an ephemeral port; `stop()` then `start()` (or `restart()`) comes back on
    the same port with the same JetStream store, as an operator's restarted server would.
    """

    def __init__(self, binary: str, store: Path) -> None:
        self.binary = binary
        self.store = store
        self.port = -1
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store), "-m", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "Listening for client connections on" in line:
                self.port = int(line.rsplit(":", 1)[1])
            if "Server is ready" in line:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("nats-server did not become ready")
        else:
            raise RuntimeError(f"nats-server exited with {self.proc.wait()}")
        # Keep draining its log so a chatty server never blocks on a full pipe.
        threading.Thread(target=lambda out=self.proc.stdout: [None for _ in out], daemon=True).start()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A running JetStream-enabled nats-server (Debian `nats-server`; under CI a missing one fails)."""
    server = NatsServer(require_tool("nats-server", "/usr/sbin/nats-server"), tmp_path / "nats-store")
    server.start()
    yield server
    server.stop()
