"""Slow subscribers must not slow ingestion: ingest rate with 100 subscribers (10 never reading)
against the same server with none, in the same run.

    python bench/subscribers.py [--lines 400000] [--runs 3] [--subscribers 100] [--stalled 10] [--topics watch|tail]

`--topics watch` (default): each subscriber takes `stats interval=0.2` and `anomalies`, as a
wall of dashboards would; `--topics tail` adds `tail level>=error` to every one of them (every
tenth generated line is an error: 100 subscribers get 10% of the stream each). Readers drain their sockets in one
select loop in a separate process without decoding; the stalled ones never read (small
SO_RCVBUF), so their queues fill and the server drops to them. Prints lines/s (median) and the
ratio with/without subscribers; the issue's target is within 10%.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import control, send_parallel, split_connections  # noqa: E402

TOPICS = {
    # What a wall of dashboards does: a STATS snapshot 5 times a second, and every event.
    "watch": b"SUBSCRIBE stats anomalies interval=0.2\n",
    # And every subscriber tailing all errors too (10% of the generated lines): heavy fan-out.
    "tail": b"SUBSCRIBE stats anomalies tail level>=error interval=0.2\n",
}


def lines(n: int) -> bytes:
    out = []
    for i in range(n):
        level = "ERROR" if i % 10 == 0 else "INFO"
        out.append(f"2025-01-30 12:{(i // 6000) % 60:02d}:{(i // 100) % 60:02d},{i % 1000:03d} {level} [svc{i % 7}] "
                   f"request {i} handled for user {i % 97}")
    return ("\n".join(out) + "\n").encode()


# The bench daemon's AUTH token (`SUBSCRIBE tail` and prime jobs need it over TCP). A constant, so
# reader processes see the same one however they start; the daemon is temporary and on loopback.
TOKEN = "bench-only-token-0123456789abcdef"


def launch(workdir: Path, extra: str = "") -> tuple[subprocess.Popen[str], dict[str, tuple[str, int]]]:
    """A daemon on ephemeral ports, and the address of each listener it logged as listening;
    `extra` is appended to its config.toml."""
    config = workdir / "config.toml"
    token_file = workdir / "control.token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    config.write_text('[rejects]\npath = ""\n[state]\ndirectory = ""\n[control]\nmax_connections = 500\nstalled_subscriber_s = 600\n'
                      f'token_file = "{token_file}"\n' + extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "logtallyd", "--config", str(config), "--tcp", "127.0.0.1:0", "--udp", "",
         "--control", "127.0.0.1:0", *([] if "[http]" in extra else ["--http", "127.0.0.1:0"])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"listening"' in line:
            entry = json.loads(line)
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]

    addresses = {}
    for name in ("tcp", "control", "http"):
        if isinstance(entry.get(name), str):
            host, port = entry[name].rsplit(":", 1)
            addresses[name] = (host, int(port))
    return proc, addresses


def start_server(workdir: Path, extra: str = "") -> tuple[subprocess.Popen[str], tuple[str, int], tuple[str, int]]:
    """A daemon on ephemeral ports (see `launch`): the process, its TCP and control addresses."""
    proc, addresses = launch(workdir, extra)
    return proc, addresses["tcp"], addresses["control"]


def readers(address: tuple[str, int], reading: int, stalled: int, ready: multiprocessing.Event,
            stop: multiprocessing.Event, subscribe: bytes) -> None:
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(reading + stalled):
        sock = socket.socket()
        if i >= reading:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(address)
        sock.sendall(f"AUTH {TOKEN}\n".encode() + subscribe)
        socks.append(sock)
        if i < reading:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            try:
                if not key.fileobj.recv(1 << 16):  # type: ignore[union-attr]
                    sel.unregister(key.fileobj)
            except BlockingIOError:
                pass
    for sock in socks:
        sock.close()


def measure(data: bytes, n: int, subscribers: int, stalled: int, subscribe: bytes = b"") -> float:
    with tempfile.TemporaryDirectory() as tmp:
        proc, tcp, ctl = start_server(Path(tmp))
        stop = multiprocessing.Event()
        reader = None
        if subscribers:
            ready = multiprocessing.Event()
            reader = multiprocessing.Process(target=readers, args=(ctl, subscribers - stalled, stalled, ready, stop, subscribe))
            reader.start()
            ready.wait(30)
            while control(ctl, "STATS")["subscribers"]["open"] < subscribers:
                time.sleep(0.05)
        started = time.perf_counter()
        send_parallel(tcp, split_connections(data, 4))
        while control(ctl, "STATS")["received"] < n:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        report = control(ctl, "STATS")
        stop.set()
        if reader is not None:
            reader.join(30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    if subscribers:
        print(f"  dropped to lagging subscribers: {report['subscribers']['dropped_messages']}, "
              f"open subscribers at end: {report['subscribers']['open']}")
    return n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--stalled", type=int, default=10)
    parser.add_argument("--topics", choices=sorted(TOPICS), default="watch")
    args = parser.parse_args()
    print(f"subscribers send: {TOPICS[args.topics].decode().strip()}")
    data = lines(args.lines)
    base, loaded = [], []
    for run in range(args.runs):
        base.append(measure(data, args.lines, 0, 0))
        loaded.append(measure(data, args.lines, args.subscribers, args.stalled, TOPICS[args.topics]))
        print(f"run {run + 1}: no subscribers {base[-1]:,.0f} lines/s; "
              f"{args.subscribers} subscribers ({args.stalled} not reading) {loaded[-1]:,.0f} lines/s")
    ratios = [b / a for a, b in zip(base, loaded)]
    print(f"\nmedian: no subscribers {statistics.median(base):,.0f} lines/s, with subscribers "
          f"{statistics.median(loaded):,.0f} lines/s; ratio median {statistics.median(ratios):.3f} "
          f"(per run: {', '.join(f'{r:.3f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
