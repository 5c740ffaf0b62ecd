"""Time from exec to `listening`: `logtallyd --config config.toml` against `rsyslogd -n`.

    python bench/startup.py [--runs 5]

Each run starts the daemon with the shipped config on ephemeral ports and a fresh temporary state
directory, and times exec to its `listening` log line (and to `workers_ready`, the pool warm,
when logged), then one `GET /readyz` (the first HTTP request, which loads the HTTP stack);
interleaved with it, rsyslogd in the foreground with an imtcp input on an unprivileged
port, timed to its port accepting a connection. Bytecode caches are written (as by a pip
install), so run 1 is cold only where no `__pycache__` existed yet (the OS page cache stays
warm); prints every run, the medians and the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import queue
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logtallyd(folder: Path) -> tuple[float, dict[str, float]]:
    """(seconds to `listening`, seconds to each other event logged before it plus 2 s after)."""
    config = folder / "config.toml"
    shipped = (ROOT / "config.toml").read_text()
    config.write_text(f'{shipped}\n')
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    # A pip install writes the bytecode caches; a sandbox's PYTHONDONTWRITEBYTECODE would make
    # every start compile every module again (~0.5 s), which no installed daemon pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(folder / "state"))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "logtallyd", "--config", str(config), "--tcp", "127.0.0.1:0",
         "--udp", "127.0.0.1:0", "--control", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    events: dict[str, float] = {}
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        # Up to `listening`, then up to `workers_ready` (the pool warm) for at most 10 s more.
        deadline = None
        http = ""
        while "workers_ready" not in events:
            try:
                line = lines.get(timeout=None if deadline is None else max(deadline - time.perf_counter(), 0.01))
            except queue.Empty:
                break
            if line is None:
                break
            now = time.perf_counter() - started
            try:
                event = json.loads(line).get("event", "?")
            except ValueError:
                continue
            events.setdefault(event, now)
            if event == "listening":
                http = json.loads(line)["http"]
            if event == "listening" and deadline is None:
                deadline = time.perf_counter() + 10
        listening = events.get("listening")
        if listening is None:
            raise SystemExit(f"logtallyd exited with {proc.wait()} before listening")
        asked = time.perf_counter()
        with urllib.request.urlopen(f"http://{http}/readyz", timeout=30) as answer:
            answer.read()
        events["first_http_answer_s"] = time.perf_counter() - asked
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return listening, events


def rsyslogd(folder: Path) -> float | None:
    """Seconds from exec until rsyslogd's imtcp port accepts; None where rsyslogd is missing."""
    exe = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
    if exe is None:
        return None
    port = free_port()
    conf = folder / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{folder}")\nmodule(load="imtcp")\n'
        f'input(type="imtcp" port="{port}" address="127.0.0.1")\n'
        f'*.* action(type="omfile" file="{folder / "out.log"}")\n')
    started = time.perf_counter()
    proc = subprocess.Popen([exe, "-n", "-f", str(conf), "-i", str(folder / "rsyslog.pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return time.perf_counter() - started
            except OSError:
                time.sleep(0.002)
        return None
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    ours: list[float] = []
    theirs: list[float] = []
    first_https: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            seconds, events = logtallyd(Path(tmp))
        with tempfile.TemporaryDirectory() as tmp:
            anchor = rsyslogd(Path(tmp))
        ours.append(seconds)
        if anchor is not None:
            theirs.append(anchor)
        first_http = events.pop("first_http_answer_s")
        first_https.append(first_http)
        steps = ", ".join(f"{name} {t:.3f}" for name, t in sorted(events.items(), key=lambda kv: kv[1]))
        steps += f"; then the first HTTP request took {first_http:.3f} s"
        print(f"run {run + 1}: logtallyd listening {seconds:.3f} s ({steps}); "
              f"rsyslogd {'-' if anchor is None else f'{anchor:.3f} s'}")
    print(f"load: {os.getloadavg()}")
    med = statistics.median(ours)
    warm = statistics.median(ours[1:]) if len(ours) > 1 else med
    line = f"logtallyd median {med:.3f} s (runs 2..: {warm:.3f} s), first HTTP request {statistics.median(first_https):.3f} s"
    if theirs:
        anchor = statistics.median(theirs)
        line += f"; rsyslogd median {anchor:.3f} s; ratio logtallyd/rsyslogd {med / anchor:.1f}"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
