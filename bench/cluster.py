"""What the cluster costs: bus bytes and messages per node-second at full ingest, the fleet view's
merge CPU per node-second, and ingest with the cluster on against off, in the same run.

    python bench/cluster.py [--lines 400000] [--runs 3]

Each run starts a real `nats-server -js`, then a daemon without `--nats` and one with it, and
streams the same generated mixed lines (bench/ingest.py) to each over 4 TCP connections. A
nats-py subscriber records every message the node publishes; the seconds that carry lines are the
node-seconds at full ingest. Their payloads are then merged into a `ClusterView` with the fleet
detectors in this process, timed (the CPU a view spends per node-second it merges and judges).
Prints medians over the runs, with the share of the bytes that the detector feeds take.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import control, generate, send_parallel, split_connections  # noqa: E402
from bench.subscribers import launch  # noqa: E402
from tests.conftest import NatsServer  # noqa: E402


def ingest(data: bytes, n: int, workdir: Path, extra: str = "") -> float:
    """Lines/s of one daemon from the first byte sent to the last line accounted."""
    proc, addresses = launch(workdir, extra)
    try:
        ctl = addresses["control"]
        time.sleep(1.0)  # the workers warm up in both cases alike
        started = time.perf_counter()
        send_parallel(addresses["tcp"], split_connections(data, 4))
        while control(ctl, "STATS")["received"] < n:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        if extra:  # every line merged (so sealed at the pace it is parsed), then on the bus
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                report = control(ctl, "STATS")
                if report["parsed"] + sum(report["rejected"].values()) >= n:
                    break
                time.sleep(0.05)
            time.sleep(1.5)
            while control(ctl, "STATS")["cluster"]["buffered"] and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(60)
    return n / elapsed


class Recorder:
    """Every message on the aggregate subjects, from its own thread and event loop."""

    def __init__(self, url: str) -> None:
        self.messages: list[bytes] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run(url)), daemon=True)
        self.thread.start()
        self.ready.wait(30)

    async def _run(self, url: str) -> None:
        import nats

        client = await nats.connect(url)

        async def got(msg: object) -> None:
            self.messages.append(msg.data)  # type: ignore[attr-defined]

        await client.subscribe("logtally.agg.*", cb=got)
        await client.flush()
        self.ready.set()
        while not self.stop.is_set():
            await asyncio.sleep(0.05)
        await client.drain()

    def close(self) -> list[bytes]:
        self.stop.set()
        self.thread.join(30)
        return self.messages


def merge_cpu(payloads: list[bytes]) -> float:
    """CPU seconds that a fleet view spends decoding, merging and judging these messages."""
    from logtallyd.cluster.detect import FleetDetect
    from logtallyd.cluster.view import ClusterView
    from logtallyd.cluster.wire import decode
    from logtallyd.detect.config import DetectConfig
    from logtallyd.stats.config import StatsConfig

    view = ClusterView(StatsConfig(), 15, time.time(), FleetDetect(DetectConfig()))
    started = time.process_time()
    for data in payloads:
        view.apply(decode(data), time.time())
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from logtallyd.cluster.wire import decode

    data = generate(args.lines)
    off, on, per_second, lines_per_second, cpu, messages_per_s, feed_share, bytes_per_line = (
        [], [], [], [], [], [], [], [])
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            nats_server = NatsServer("/usr/sbin/nats-server", Path(tmp) / "nats")
            nats_server.start()
            try:
                (Path(tmp) / "off").mkdir()
                (Path(tmp) / "on").mkdir()
                off.append(ingest(data, args.lines, Path(tmp) / "off"))
                recorder = Recorder(nats_server.url)
                on.append(ingest(data, args.lines, Path(tmp) / "on",
                                 f'[cluster]\nnats = "{nats_server.url}"\nnode = "bench"\n'))
                payloads = recorder.close()
            finally:
                nats_server.stop()
        decoded = [decode(p) for p in payloads]
        # One sealed second is one message, or several past [cluster] max_message_bytes.
        seconds: dict[float, list[int]] = {}
        for p, m in zip(payloads, decoded):
            sealed = seconds.setdefault(m.tick, [0, 0])
            sealed[0] += len(p)
            sealed[1] += m.received
        busy = [(b, r) for b, r in seconds.values() if r]
        per_second.append(statistics.median(b for b, _ in busy))
        feed_share.append(sum(len(m.feed) for m in decoded) / sum(len(p) for p in payloads))
        lines_per_second.append(statistics.median(r for _, r in busy))
        bytes_per_line.append(sum(b for b, _ in busy) / sum(r for _, r in busy))
        ticks = [m.tick for m in decoded]
        messages_per_s.append(len(payloads) / (max(ticks) - min(ticks) + 1))
        cpu.append(merge_cpu([p for p, m in zip(payloads, decoded) if m.received or m.feed]) / len(busy))
        print(f"run {run + 1}: off {off[-1]:,.0f} lines/s, on {on[-1]:,.0f} lines/s; "
              f"{len(busy)} busy node-seconds, median {per_second[-1]:,.0f} bytes carrying "
              f"{lines_per_second[-1]:,.0f} lines ({feed_share[-1]:.0%} detector feeds, {bytes_per_line[-1]:.1f} bytes "
              "per line); "
              f"{messages_per_s[-1]:.2f} messages/s; "
              f"view merge {cpu[-1] * 1000:.2f} ms CPU per node-second")
    ratios = [b / a for a, b in zip(off, on)]
    print(f"\nmedian: ingest off {statistics.median(off):,.0f} lines/s, on {statistics.median(on):,.0f} lines/s, "
          f"ratio on/off {statistics.median(ratios):.3f} (per run: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"median bus: {statistics.median(per_second):,.0f} bytes and {statistics.median(messages_per_s):.2f} "
          f"messages per node-second, at {statistics.median(lines_per_second):,.0f} lines per node-second, "
          f"{statistics.median(feed_share):.0%} of the bytes detector feeds; {statistics.median(bytes_per_line):.1f} "
          "bytes per line")
    print(f"median view merge CPU: {statistics.median(cpu) * 1000:.2f} ms per node-second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
