"""Ingest with the dashboard open against ingest with nothing watching, in the same run, and the
latency of `/api/v1/stats` while ingest runs flat out.

    python bench/api_load.py [--lines 400000] [--runs 3] [--clients 10] [--poll-s 0.25]

"The dashboard open" is what the page asks for: `--clients` Server-Sent-Event streams on
`/api/v1/stream?topics=stats,anomalies,tail` (tail is refused to an anonymous HTTP client: the
streams then take stats,anomalies, and the bench says so) drained by a separate process, and
`GET /api/v1/stats?window=5m` every `--poll-s` seconds over a kept-alive connection, timed. Each
run measures both daemons, in turns first; prints lines/s (median), the ratio loaded/none per run, and the
median and p99 of the poll latency over every run. Figures to compare, not a timed assertion.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import selectors
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

from bench.ingest import control, send_parallel, split_connections  # noqa: E402
from bench.subscribers import launch, lines  # noqa: E402

WANTED = "stats,anomalies,tail"
WARM_UP = 20_000  # lines sent and counted before the measured ones


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def stream_topics(address: tuple[str, int]) -> str:
    """The topics the page can have: WANTED if the daemon streams them to it, else without tail."""
    web = http.client.HTTPConnection(*address, timeout=30)
    web.request("GET", f"/api/v1/stream?topics={WANTED}")
    status = web.getresponse().status
    web.close()
    return WANTED if status == 200 else "stats,anomalies"


def sse_clients(address: tuple[str, int], n: int, topics: str, ready: multiprocessing.Event,
                stop: multiprocessing.Event) -> None:
    """n browsers' event streams, read as they come (not decoded) in one select loop."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        sock = socket.create_connection(address)
        sock.sendall(f"GET /api/v1/stream?topics={topics}&interval_s=1 HTTP/1.1\r\nHost: bench\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        socks.append(sock)
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            try:
                if not key.fileobj.recv(1 << 16):  # type: ignore[union-attr]
                    sel.unregister(key.fileobj)
            except (BlockingIOError, ConnectionResetError):
                pass
    for sock in socks:
        sock.close()


def poll(address: tuple[str, int], every_s: float, stop: threading.Event, timings: list[float]) -> None:
    web = http.client.HTTPConnection(*address, timeout=60)
    while not stop.is_set():
        t = time.perf_counter()
        web.request("GET", "/api/v1/stats?window=5m")
        response = web.getresponse()
        assert response.status == 200 and json.loads(response.read())["window"] == "5m"
        timings.append(time.perf_counter() - t)
        stop.wait(every_s)
    web.close()


def measure(data: bytes, n: int, clients: int, poll_s: float, timings: list[float]) -> tuple[float, str]:
    """lines/s for one daemon; with `clients` > 0 the dashboard is open meanwhile."""
    topics = ""
    with tempfile.TemporaryDirectory() as tmp:
        proc, addresses = launch(Path(tmp), '[http]\nlisten = "127.0.0.1:0"\n')
        ctl, stop, done = addresses["control"], multiprocessing.Event(), threading.Event()
        # Every worker warm before the clock starts (they warm up behind the open listeners),
        # so neither daemon's figure includes process start-up.
        send_parallel(addresses["tcp"], split_connections(lines(WARM_UP), 4))
        while control(ctl, "STATS")["received"] < WARM_UP:
            time.sleep(0.05)
        browsers, poller = None, None
        if clients:
            topics = stream_topics(addresses["http"])
            ready = multiprocessing.Event()
            browsers = multiprocessing.Process(target=sse_clients, args=(addresses["http"], clients, topics, ready, stop))
            browsers.start()
            ready.wait(30)
            while control(ctl, "STATS")["subscribers"]["open"] < clients:
                time.sleep(0.05)
            poller = threading.Thread(target=poll, args=(addresses["http"], poll_s, done, timings))
            poller.start()
        started = time.perf_counter()
        send_parallel(addresses["tcp"], split_connections(data, 4))
        while control(ctl, "STATS")["received"] < WARM_UP + n:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        report = control(ctl, "STATS")
        done.set()
        stop.set()
        if poller is not None:
            poller.join(60)
        if browsers is not None:
            browsers.join(30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    if clients:
        print(f"  streams open at end: {report['subscribers']['open']}, dropped to them: "
              f"{report['subscribers']['dropped_messages']}")
    return n / elapsed, topics


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--poll-s", type=float, default=0.25)
    args = parser.parse_args()
    data = lines(args.lines)
    base, loaded, timings = [], [], []
    topics = ""
    for run in range(args.runs):
        # The two alternate which goes first, so neither always has the machine as it was left.
        for clients in ((0, args.clients) if run % 2 == 0 else (args.clients, 0)):
            rate, shown = measure(data, args.lines, clients, args.poll_s, timings)
            if clients:
                loaded.append(rate)
                topics = shown
            else:
                base.append(rate)
        print(f"run {run + 1}: nothing watching {base[-1]:,.0f} lines/s; dashboard open ({args.clients} streams"
              f" of {topics}, /api/v1/stats every {args.poll_s} s) {loaded[-1]:,.0f} lines/s")
    if topics != WANTED:
        print(f"note: {WANTED} was refused to an anonymous HTTP client; the streams took {topics}")
    ratios = [b / a for a, b in zip(base, loaded)]
    print(f"\nmedian: nothing watching {statistics.median(base):,.0f} lines/s, dashboard open "
          f"{statistics.median(loaded):,.0f} lines/s; ratio median {statistics.median(ratios):.3f} "
          f"(per run: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"GET /api/v1/stats?window=5m during full ingest: n={len(timings)}  median "
          f"{statistics.median(timings) * 1000:.1f} ms  p99 {percentile(timings, 0.99) * 1000:.1f} ms  "
          f"max {max(timings) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
