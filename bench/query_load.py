"""Query latency at full ingest load: `STATS 15m` and `TOP ... 15m` timed while logtallyd ingests
as fast as it can (issue 4: a query must stay under 50 ms).

    python bench/query_load.py [--lines 1200000]

The generated stream carries ~1,000 lines per event second, so the 15-minute window is full
(900 seconds of buckets) well before the send ends. Prints median, p95 and max per query.
"""
from __future__ import annotations

import argparse
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import generate, send_parallel, split_connections  # noqa: E402
from bench.subscribers import start_server  # noqa: E402

QUERIES = ("STATS 15m", "TOP ip 10 15m", "TOP error 10 15m", "TOP suspicious_ip 10 15m", "STATS 1m")


def ask(sock: socket.socket, reader, command: str) -> float:
    started = time.perf_counter()
    sock.sendall(command.encode() + b"\n")
    reader.readline()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_200_000)
    args = parser.parse_args()
    data = generate(args.lines)
    timings: dict[str, list[float]] = {q: [] for q in QUERIES}
    with tempfile.TemporaryDirectory() as tmp:
        proc, tcp, ctl = start_server(Path(tmp))
        sender = threading.Thread(target=send_parallel, args=(tcp, split_connections(data, 4)))
        started = time.perf_counter()
        sender.start()
        sock = socket.create_connection(ctl)
        reader = sock.makefile("rb")
        time.sleep(2.0)  # let the windows fill first
        while sender.is_alive():
            for query in QUERIES:
                timings[query].append(ask(sock, reader, query))
            time.sleep(0.05)
        sender.join()
        elapsed = time.perf_counter() - started
        sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    print(f"{args.lines:,} lines sent in {elapsed:.1f} s ({args.lines / elapsed:,.0f} lines/s) while querying")
    for query, values in timings.items():
        values.sort()
        if not values:
            continue
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        print(f"{query:<28} n={len(values):4d}  median {statistics.median(values) * 1000:6.1f} ms  "
              f"p95 {p95 * 1000:6.1f} ms  max {values[-1] * 1000:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
