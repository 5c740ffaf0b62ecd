"""Throughput of the detection path: Feed.add_many in a worker, and Engine consume + advance.

Run: python bench/bench_detect.py [lines]
"""
from __future__ import annotations

import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logtallyd.detect.config import DetectConfig  # noqa: E402
from logtallyd.detect.engine import Engine  # noqa: E402
from logtallyd.detect.feed import Feed  # noqa: E402
from logtallyd.records import Http, Record, is_error  # noqa: E402

T0 = 1_700_000_000


def records(n: int) -> list[Record]:
    rnd = random.Random(1)
    out = []
    for i in range(n):
        s = i // 2000  # 2,000 lines/s of event time
        if i % 50 == 0:
            out.append(Record("rfc3164", message=f"Failed password for root from 203.0.113.{i % 200} port 22",
                              ts=T0 + s, host="h", service="sshd", severity=6))
        elif i % 100 == 1:
            out.append(Record("app", message=f"db timeout after {rnd.randint(1, 999)} ms", ts=T0 + s,
                              service="api", severity=3))
        else:
            out.append(Record("access", message=f"GET /item/{i % 1000} HTTP/1.1", ts=T0 + s + (i % 2000) / 2000,
                              service=("api", "web", "auth")[i % 3], severity=6,
                              http=Http(ip=f"10.0.{i % 7}.{i % 251}", status=(200, 200, 404)[i % 3],
                                        latency_ms=rnd.uniform(5, 200))))
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    recs = records(n)
    cfg = DetectConfig()
    mask = re.compile(r"\d+")
    batch = 2000
    t = time.perf_counter()
    blobs = []
    for start in range(0, n, batch):
        feed = Feed(cfg, origin=len(blobs))
        chunk = recs[start : start + batch]
        templates = [mask.sub("<n>", rec.message) if is_error(rec) else None for rec in chunk]
        feed.add_many(chunk, [int(rec.ts) for rec in chunk], templates)  # type: ignore[arg-type]
        blobs.append(feed.to_bytes())
    build = time.perf_counter() - t
    size = sum(map(len, blobs))
    t = time.perf_counter()
    engine = Engine(cfg)
    for blob in blobs:
        feed = Feed.from_bytes(blob)
        first = min(feed.data.seconds)  # in order here: the watermark is the batch's first second
        engine.consume(feed)
        engine.advance(first)
    events = engine.flush()
    detect = time.perf_counter() - t
    print(f"{n} records, batches of {batch}")
    print(f"feed build (worker side): {n / build:,.0f} records/s, {size / n:.1f} bytes/record on the pipe")
    print(f"engine consume+advance+flush: {n / detect:,.0f} records/s ({detect * 1000:.0f} ms), {len(events)} events")


if __name__ == "__main__":
    main()
