"""Cardinality: stream access-log lines from N distinct client IPs (and as many paths and user
agents) into logtallyd and watch the daemon's RSS; past `[stats] exact_keys` distinct values the
top-N tallies are fixed-size sketches and old buckets are dropped, so it must level off.

    python bench/ips.py [--ips 1000000] [--step 100000] [--stats 'second_exact_keys = 256']

Prints the main process's RSS after each step and the peak of the whole process tree.
"""
from __future__ import annotations

import argparse
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import control, rss_tree_kb  # noqa: E402
from bench.subscribers import start_server  # noqa: E402


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def chunk(start: int, count: int) -> bytes:
    out = []
    for i in range(start, start + count):
        ip = f"{10 + (i >> 24) % 200}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        sec = i // 500  # 500 lines per event second: the windows slide while we go
        out.append(
            f'{ip} - - [30/Jan/2025:{(sec // 3600) % 24:02d}:{(sec // 60) % 60:02d}:{sec % 60:02d} +0000] '
            f'"GET /item/{i} HTTP/1.1" {404 if i % 9 == 0 else 200} 512 "-" "agent-{i}" 0.012'
        )
    return ("\n".join(out) + "\n").encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ips", type=int, default=1_000_000)
    parser.add_argument("--step", type=int, default=100_000)
    parser.add_argument("--stats", action="append", default=[], metavar="KEY=VALUE",
                        help="a [stats] line for the daemon's config.toml (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extra = "[stats]\n" + "".join(f"{line}\n" for line in args.stats) if args.stats else ""
        proc, tcp, ctl = start_server(Path(tmp), extra)
        print(f"start: RSS {rss_kb(proc.pid) / 1024:.0f} MiB")
        sent = 0
        with socket.create_connection(tcp) as sock:
            while sent < args.ips:
                n = min(args.step, args.ips - sent)
                sock.sendall(chunk(sent, n))
                sent += n
                while control(ctl, "STATS")["received"] < sent:
                    time.sleep(0.02)
                print(f"{sent:>9,} distinct IPs: main process RSS {rss_kb(proc.pid) / 1024:.0f} MiB")
        top = control(ctl, "TOP ip 3")
        print(f"TOP ip 3: {top['top']}")
        print(f"peak RSS of the process tree (main + workers): {rss_tree_kb(proc.pid) / 1024:.0f} MiB")
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
