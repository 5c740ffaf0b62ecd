"""The client on a real terminal: `watch`, `tail` and `send` run inside tmux at 80x24 against a real
`logtallyd`, read back with capture-pane; the scrollback size says whether `watch` drew in place."""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from logtally.numbers import rate, size
from logtally.tail import COLUMNS
from tests.conftest import ROOT, ServerProcess, require_tool, send_tcp
from tests.test_client import BRUTE_FORCE, access_line, rfc5424, wait_events

WIDTH, HEIGHT = 80, 24


class Tmux:
    """One tmux server on a private socket with one WIDTHxHEIGHT pane running a command."""

    def __init__(self, tmp_path: Path, command: list[str]) -> None:
        self.tmux = require_tool("tmux")
        self.socket = str(tmp_path / "tmux.sock")
        config = tmp_path / "tmux.conf"
        # No status line (the pane is the whole 80x24); a finished command's last screen stays.
        config.write_text("set -g status off\nset -g remain-on-exit on\nset -g history-limit 5000\n")
        env = f"env PYTHONPATH={shlex.quote(str(ROOT))} TERM=tmux-256color"
        # The exit status goes to a file: tmux 3.3's #{pane_dead_status} is sometimes left empty.
        self.status_file = tmp_path / "tmux.status"
        line = (f"cd {shlex.quote(str(ROOT))} && {env} " + " ".join(shlex.quote(w) for w in command)
                + f"; echo $? > {shlex.quote(str(self.status_file))}")
        self.run("-f", str(config), "new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), line)

    def run(self, *args: str) -> str:
        out = subprocess.run([self.tmux, "-S", self.socket, *args], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def screen(self) -> list[str]:
        return self.run("capture-pane", "-p").split("\n")[:HEIGHT]

    def everything(self) -> list[str]:
        """The scrollback and the screen, oldest line first."""
        return self.run("capture-pane", "-p", "-S", "-").rstrip("\n").split("\n")

    def show(self, name: str) -> str:
        return self.run("display-message", "-p", "#{" + name + "}").strip()

    def wait_screen(self, ok: Callable[[list[str]], bool], timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if ok(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError("screen never matched:\n" + "\n".join(lines))
            time.sleep(0.1)

    def wait_dead(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.show("pane_dead") != "1":
            assert time.monotonic() < deadline, "the command did not exit:\n" + "\n".join(self.screen())
            time.sleep(0.1)

    def exit_status(self) -> str:
        return self.status_file.read_text().strip()

    def close(self) -> None:
        subprocess.run([self.tmux, "-S", self.socket, "kill-server"], capture_output=True, timeout=30)


def client(server: ServerProcess, *args: str) -> list[str]:
    return [sys.executable, "-m", "logtally", *args, "--control", server.addresses["control"],
            "--token-file", str(server.token_file)]


# -- watch -----------------------------------------------------------------------------------------

def test_watch_at_80x24_shows_key_figures_first_and_redraws_in_place(start_server, tmp_path: Path) -> None:
    # The sample lines' event times jump by days from one kind to the next, which the sender
    # detector rightly reads as the sender going silent and coming back: off, so that the one
    # anomaly on screen is the brute-force pattern.
    server = start_server("[detect.senders]\nenabled = false\n")
    lines = [rfc5424(i) for i in range(40)] + [rfc5424(i, severity=3, message="db down {i}") for i in range(10)]
    lines += [access_line(i, status=503 if i < 5 else 200) + f" 0.{i:03d}" for i in range(20)]
    send_tcp(server.address("tcp"), ("\n".join(lines + BRUTE_FORCE) + "\n").encode())
    assert len(wait_events(server, 1)) == 1  # the brute-force pattern
    held = socket.create_connection(server.address("tcp"))  # one connection stays open
    try:
        while server.stats()["connections"]["open"] != 1:
            time.sleep(0.05)
        report = server.wait_received(75)
        assert report["received"] == 75 and report["errors"] == 15
        p95 = report["http"]["latency_ms"]["p95"]

        tmux = Tmux(tmp_path, client(server, "watch", "--window", "all", "--interval", "0.2"))
        try:
            screen = tmux.wait_screen(lambda s: s[1].startswith("lines/s ") and "received" in s[1])
            assert tmux.show("alternate_on") == "1"
            assert screen[0].startswith(f"logtally {server.addresses['control']}  window all  up ")
            assert screen[1].startswith("lines/s ")
            assert screen[1].endswith(f"  received 75  bytes {size(report['bytes'])}")
            assert screen[2] == f"errors 15  error rate 20.00%  p95 {rate(p95)} ms  connections 1  anomalies 1"
            assert screen[3] == "─" * WIDTH
            # Then the sections, as many as fit, the most useful first.
            assert screen[4].split() == ["levels", "status", "classes"]
            assert screen[5].split() == ["ERROR", "15", "2xx", "15"]
            assert screen[6].split() == ["INFO", "60", "5xx", "5"]
            assert len(screen) == HEIGHT and all(len(line) <= WIDTH for line in screen)
            assert screen[-1].strip() != ""  # the height is used, not only the top

            # Several redraws with new figures: the scrollback stays empty.
            assert tmux.show("history_size") == "0"
            for n in (1, 2, 3):
                send_tcp(server.address("tcp"), "".join(rfc5424(i) + "\n" for i in range(10)).encode())
                screen = tmux.wait_screen(lambda s, n=n: f"  received {75 + 10 * n}  " in s[1])
                assert screen[2].startswith("errors 15  error rate ")
                assert tmux.show("history_size") == "0"
            # q quits; the terminal gets its normal screen back, and no frame was left on it or
            # in its scrollback (tmux itself scrolls a dead pane by one line, so count lines).
            tmux.run("send-keys", "q")
            tmux.wait_dead()
            assert tmux.show("alternate_on") == "0"
            assert tmux.exit_status() == "0"
            assert [line for line in tmux.everything() if "received" in line or "lines/s" in line] == []
        finally:
            tmux.close()
    finally:
        held.close()


# -- tail ---------------------------------------------------------------------------------------------

def test_tail_on_a_terminal_prints_fixed_columns_cut_at_the_width(start_server, tmp_path: Path) -> None:
    server = start_server()
    tmux = Tmux(tmp_path, client(server, "tail"))
    try:
        while server.stats()["subscribers"]["open"] < 1:
            time.sleep(0.05)
        long = "x" * 200
        lines = [
            "<11>1 2025-01-30T12:00:01Z web-1 api 1 - - payment failed",
            "<14>1 2025-01-30T12:00:02Z database-primary-eu-west-1 billing-service 1 - - " + long,
            "no format at all",
        ]
        send_tcp(server.address("tcp"), ("\n".join(lines) + "\n").encode())
        screen = tmux.wait_screen(lambda s: any(line.startswith("-") for line in s))
        rows = [line for line in screen if line.strip() and not line.startswith("#")]
        widths = [w for _, w in COLUMNS]
        assert rows[0] == "2025-01-30T12:00:01Z ERROR   api        web-1      payment failed"
        assert rows[1] == "2025-01-30T12:00:02Z INFO    billing-s… database-… " + "x" * (WIDTH - 52) + "…"
        assert rows[2] == "-".ljust(widths[0]) + " " + "-".ljust(widths[1]) + " " + "-".ljust(widths[2]) + " " \
            + "-".ljust(widths[3]) + " no format at all"
        assert len(rows[1]) == WIDTH
    finally:
        tmux.close()


# -- send progress -------------------------------------------------------------------------------------

def test_send_shows_progress_on_a_terminal_and_nothing_through_a_pipe(start_server, tmp_path: Path) -> None:
    server = start_server()
    path = tmp_path / "big.log"
    path.write_text("".join(rfc5424(i) + "\n" for i in range(30000)))
    size_mib = f"{path.stat().st_size / 2**20:.1f}"

    tmux = Tmux(tmp_path, client(server, "send", "--to", server.addresses["tcp"], str(path)))
    try:
        tmux.wait_dead()
        # When its command ends, tmux scrolls a dead pane by a line: read the scrollback too.
        screen = [line for line in tmux.everything() if line.strip()]
        assert tmux.exit_status() == "0"
        bar, summary = screen[0], screen[1]
        # rich's bar: name, bar, percent, bytes done/total, lines/s, time left.
        assert bar.startswith("send ━")
        assert f" 100% {size_mib}/{size_mib} MiB " in bar and " lines/s eta 0:00:00" in bar
        assert summary.startswith("sent 30,000 lines (")
    finally:
        tmux.close()
    server.wait_received(30000)

    out = subprocess.run(client(server, "send", "--to", server.addresses["tcp"], str(path)),
                         capture_output=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert out.returncode == 0 and out.stdout == b""
    (line,) = out.stderr.decode().splitlines()
    assert line.startswith(f"sent 30,000 lines ({size_mib} MiB) from 1 file(s) in ")
    assert "\x1b" not in out.stderr.decode() and "\r" not in out.stderr.decode()
