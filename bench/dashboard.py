"""Ingest rate with the dashboard open (headless chromium on `/`) and 10 SSE clients reading
`/api/v1/stream?topics=stats,anomalies&interval_s=0.2`, against the same daemon with none, in the
same run.

    python bench/dashboard.py [--lines 400000] [--runs 3] [--sse 10]

Prints lines/s per run, the medians and the ratio with/without. The browser and the SSE readers
run on the same machine as the daemon, so on a small box part of any difference is their CPU,
not the daemon slowing down: `--no-browser` leaves the browser out to tell the two apart.
"""
from __future__ import annotations

import argparse
import http.client
import multiprocessing
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import control, send_parallel, split_connections  # noqa: E402
from bench.subscribers import launch, lines  # noqa: E402

STREAM = "/api/v1/stream?topics=stats,anomalies&interval_s=0.2"


def sse_readers(address: tuple[str, int], n: int, ready: Any, stop: Any) -> None:
    """`n` streams read in one process, each body drained as it comes (no decoding)."""
    import selectors

    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(n):
        conn = http.client.HTTPConnection(*address, timeout=60)
        conn.request("GET", STREAM)
        response = conn.getresponse()
        assert response.status == 200
        conns.append((conn, response))
        sel.register(response.fp, selectors.EVENT_READ, response)
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            if not key.data.read1(1 << 16):
                sel.unregister(key.fileobj)
    for conn, _ in conns:
        conn.close()


def browser(url: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,2000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.get(url)
    return driver


def measure(data: bytes, n: int, sse: int, with_browser: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        proc, addresses = launch(Path(tmp), '[http]\nlisten = "127.0.0.1:0"\n')
        ctl = addresses["control"]
        stop = multiprocessing.Event()
        reader = driver = None
        expected = sse + (1 if with_browser else 0)
        if sse:
            ready = multiprocessing.Event()
            reader = multiprocessing.Process(target=sse_readers, args=(addresses["http"], sse, ready, stop))
            reader.start()
            ready.wait(30)
        if with_browser:
            host, port = addresses["http"]
            driver = browser(f"http://{host}:{port}/")
        while control(ctl, "STATS")["subscribers"]["open"] < expected:
            time.sleep(0.05)
        started = time.perf_counter()
        send_parallel(addresses["tcp"], split_connections(data, 4))
        while control(ctl, "STATS")["received"] < n:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        stop.set()
        if driver is not None:
            driver.quit()
        if reader is not None:
            reader.join(30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sse", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    data = lines(args.lines)
    watched = f"{args.sse} SSE clients" + ("" if args.no_browser else " + the dashboard in chromium")
    base, loaded = [], []
    for run in range(args.runs):
        base.append(measure(data, args.lines, 0, False))
        loaded.append(measure(data, args.lines, args.sse, not args.no_browser))
        print(f"run {run + 1}: none {base[-1]:,.0f} lines/s; {watched} {loaded[-1]:,.0f} lines/s")
    ratios = [b / a for a, b in zip(base, loaded)]
    print(f"\nmedian: none {statistics.median(base):,.0f} lines/s, {watched} {statistics.median(loaded):,.0f} "
          f"lines/s; ratio median {statistics.median(ratios):.3f} (per run: {', '.join(f'{r:.3f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
