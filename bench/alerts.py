"""A dead alert route must not slow ingestion: ingest rate with an `[[alerts]]` webhook whose
receiver is down for the whole run, against the same server with no route, in the same run.

    python bench/alerts.py [--lines 400000] [--runs 3] [--services 500]

Every hundredth generated line is an error of one of `--services` services, and a one-step
pattern (`failed`, keyed by service) turns each into an event, so both servers detect and log the
same events; only the first has a route, pointed at a loopback port nothing listens on, retrying
as fast as its backoff allows (0.01 s doubling to 0.5 s) with a queue of 100: the queue fills,
the oldest are dropped and dead-lettered. Prints lines/s (median), the ratio route/none, and the
route's counts at the end. Not a timed assertion: a figure to compare.
"""
from __future__ import annotations

import argparse
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import control, send_parallel, split_connections  # noqa: E402
from bench.subscribers import start_server  # noqa: E402

DETECT = """
[pipeline]
event_lateness_s = 1

[detect.zscore]
enabled = false

[[detect.patterns]]
name = "failed"
key = "service"
steps = ["failed"]
max_gap_s = 60.0
"""


def lines(n: int, services: int) -> bytes:
    out = []
    for i in range(n):
        # 100 lines per event second, in order (no line arrives after its second was processed)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1738238400 + i // 100)) + f",{i % 1000:03d}"
        if i % 100 == 0:
            out.append(f"{stamp} ERROR [svc{(i // 100) % services}] request {i} failed for user {i % 97}")
        else:
            out.append(f"{stamp} INFO [svc{i % 7}] request {i} handled for user {i % 97}")
    return ("\n".join(out) + "\n").encode()


def dead_route(workdir: Path) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"""
[[alerts]]
name = "down"
kind = "webhook"
url = "http://127.0.0.1:{port}/"
group_by = ["kind", "key"]
timeout_s = 1.0
max_retries = 100
backoff_initial_s = 0.01
backoff_max_s = 0.5
queue_size = 100
dead_letter = "{workdir / 'dead.jsonl'}"
"""


def measure(data: bytes, n: int, with_route: bool) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc, tcp, ctl = start_server(workdir, DETECT + (dead_route(workdir) if with_route else ""))
        started = time.perf_counter()
        send_parallel(tcp, split_connections(data, 4))
        while control(ctl, "STATS")["received"] < n:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        time.sleep(3.0)  # past the lateness: the last events reach the route
        routes = control(ctl, "ALERTS")["routes"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return n / elapsed, routes.get("down", {})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--services", type=int, default=500)
    args = parser.parse_args()
    data = lines(args.lines, args.services)
    base, loaded = [], []
    for run in range(args.runs):
        # Alternate which goes first, so a drift in the machine's load favours neither.
        if run % 2:
            rate, route = measure(data, args.lines, True)
            base.append(measure(data, args.lines, False)[0])
        else:
            base.append(measure(data, args.lines, False)[0])
            rate, route = measure(data, args.lines, True)
        loaded.append(rate)
        print(f"run {run + 1}: no route {base[-1]:,.0f} lines/s; dead route {loaded[-1]:,.0f} lines/s "
              f"(route: {route.get('notifications')} notifications, {route.get('dropped')} dropped, "
              f"{route.get('retried')} retries, {route.get('queued')} queued, {route.get('dead_letters')} dead letters)")
    ratios = [b / a for a, b in zip(base, loaded)]
    print(f"\nmedian: no route {statistics.median(base):,.0f} lines/s, dead route {statistics.median(loaded):,.0f} "
          f"lines/s; ratio median {statistics.median(ratios):.3f} (per run: {', '.join(f'{r:.3f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
