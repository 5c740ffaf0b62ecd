"""Query latency of the HTTP API at full ingest load: `GET /api/v1/stats?window=15m` over one
kept-alive connection, against `STATS 15m` on the control port, in the same run (issue 16).

    python bench/http_api.py [--lines 1200000]

Prints the ingest rate while querying and median, p99 and max per query. Not a timed assertion:
figures to compare.
"""
from __future__ import annotations

import argparse
import http.client
import json
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
from bench.subscribers import launch  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_200_000)
    args = parser.parse_args()
    data = generate(args.lines)
    timings: dict[str, list[float]] = {"GET /api/v1/stats?window=15m": [], "STATS 15m (control)": []}
    with tempfile.TemporaryDirectory() as tmp:
        proc, addresses = launch(Path(tmp), '[http]\nlisten = "127.0.0.1:0"\n')
        sender = threading.Thread(target=send_parallel, args=(addresses["tcp"], split_connections(data, 4)))
        started = time.perf_counter()
        sender.start()
        web = http.client.HTTPConnection(*addresses["http"], timeout=60)
        ctl = socket.create_connection(addresses["control"])
        reader = ctl.makefile("rb")
        time.sleep(2.0)  # let the windows fill first
        while sender.is_alive():
            t = time.perf_counter()
            web.request("GET", "/api/v1/stats?window=15m")
            response = web.getresponse()
            assert response.status == 200 and json.loads(response.read())["window"] == "15m"
            timings["GET /api/v1/stats?window=15m"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ctl.sendall(b"STATS 15m\n")
            assert json.loads(reader.readline())["window"] == "15m"
            timings["STATS 15m (control)"].append(time.perf_counter() - t)
            time.sleep(0.05)
        sender.join()
        elapsed = time.perf_counter() - started
        web.close()
        ctl.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    print(f"{args.lines:,} lines sent in {elapsed:.1f} s ({args.lines / elapsed:,.0f} lines/s) while querying")
    for query, values in timings.items():
        if values:
            print(f"{query:<32} n={len(values):4d}  median {statistics.median(values) * 1000:6.1f} ms  "
                  f"p99 {percentile(values, 0.99) * 1000:6.1f} ms  max {max(values) * 1000:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
