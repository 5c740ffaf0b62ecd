"""Lines lost across a kill -9, with the raw archive off and on, under the same load.

    python bench/crash.py [--rate 20000] [--seconds 20] [--snapshot-interval 30] [--fsync interval]

For each mode a fresh daemon (state on, the given snapshot interval) gets numbered mixed lines at
a fixed rate over one TCP connection; after `--seconds` it is killed with SIGKILL, restarted on the
same state (and archive), and STATS all read. Prints lines sent (handed to the kernel), counted
after the restart, lost (sent - counted) and, with the archive, lines on disk in the archive and
counted - archived (0 when every archived line is counted exactly once). Lines still in the socket
buffers or in the open batch at the kill never reach the archive: that is the archive-on loss.
"""
from __future__ import annotations

import argparse
import gzip
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from ingest import generate  # noqa: E402  (same mixed lines as the ingest benchmark)


class Daemon:
    def __init__(self, workdir: Path, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logtallyd", "--config", str(config), "--tcp", "127.0.0.1:0", "--udp", "",
             "--control", "127.0.0.1:0", "--http", "127.0.0.1:0"],
            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        self.events: dict[str, dict] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self.events.setdefault(entry.get("event", ""), entry)
            if entry.get("event") == "listening":
                self.tcp = split(entry["tcp"])
                self.control = split(entry["control"])
                break
        else:
            raise SystemExit(f"daemon exited before listening ({self.proc.wait()})")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained

    def stats(self) -> dict:
        with socket.create_connection(self.control, timeout=60) as sock:
            sock.sendall(b"STATS all\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)


def split(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def archived_lines(directory: Path) -> int:
    total = 0
    for path in directory.iterdir() if directory.exists() else []:
        if path.name.endswith(".gz"):
            total += gzip.decompress(path.read_bytes()).count(b"\n")
        elif path.name.endswith(".log"):
            total += path.read_bytes().count(b"\n")
    return total


def run(archive: bool, args: argparse.Namespace, lines: list[bytes]) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="logtally-crash-"))
    config = workdir / "config.toml"
    config.write_text(
        f'[rejects]\npath = ""\n[state]\ndirectory = "{workdir / "state"}"\n'
        f"snapshot_interval_s = {args.snapshot_interval}\n"
        f'[archive]\nenabled = {"true" if archive else "false"}\ndirectory = "{workdir / "archive"}"\n'
        f'fsync = "{args.fsync}"\n'
    )
    daemon = Daemon(workdir, config)
    sent = 0
    stop = threading.Event()
    chunk = max(1, args.rate // 100)  # 100 sends a second

    def send() -> None:
        nonlocal sent
        started = time.monotonic()
        try:
            with socket.create_connection(daemon.tcp) as sock:
                while not stop.is_set():
                    i = sent % len(lines)
                    sock.sendall(b"".join(lines[i : i + chunk]))
                    sent += len(lines[i : i + chunk])
                    delay = started + sent / args.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        except OSError:
            pass  # killed under us

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(args.seconds)
    before_kill = daemon.stats()["received"]
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait()
    stop.set()
    sender.join()
    on_disk = archived_lines(workdir / "archive")
    restarted = Daemon(workdir, config)
    after = restarted.stats()
    restarted.proc.send_signal(signal.SIGTERM)
    restarted.proc.wait(120)
    counted = after["received"]
    result = {
        "archive": archive, "sent": sent, "received_before_kill": before_kill, "counted_after_restart": counted,
        "lost": sent - counted, "balanced": counted == after["parsed"] + sum(after["rejected"].values()),
    }
    if archive:
        result |= {"archived": on_disk, "counted_minus_archived": counted - on_disk,
                   "replayed": restarted.events.get("archive_replayed", {}).get("lines")}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=20000, help="lines per second sent")
    parser.add_argument("--seconds", type=float, default=20.0, help="load before the kill -9")
    parser.add_argument("--snapshot-interval", type=float, default=30.0)
    parser.add_argument("--fsync", default="interval", choices=("batch", "interval", "never"))
    args = parser.parse_args()
    lines = [line + b"\n" for line in generate(200_000).split(b"\n") if line]
    for archive in (False, True):
        print(json.dumps(run(archive, args, lines)), flush=True)


if __name__ == "__main__":
    main()
