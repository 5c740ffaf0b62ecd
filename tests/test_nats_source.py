"""`[sources.nats]` against a real nats-server: lines published with nats-py are counted like TCP
lines, exactly once across a `kill -9` of the consuming daemon."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from conftest import NatsServer, ServerProcess

TOTAL = 100_000
OVERSIZE = 10  # lines past [ingest] max_message_bytes: received, rejected


def _config(url: str) -> str:
    return f"""
[ingest]
max_message_bytes = 1024
[pipeline]
workers = 1
[state]
snapshot_interval_s = 0.3
[cluster]
nats = "{url}"
node = "n1"
[sources.nats]
subjects = ["logs.>"]
max_ack_pending = 20000
ack_wait_s = 3
"""


def _messages() -> list[bytes]:
    """TOTAL lines: single-line messages, three-line messages, and a few oversize lines."""
    lines = [f"<13>Oct 11 22:14:15 host{i % 50} app[{i % 7}]: request {i} done in {i % 97} ms".encode()
             for i in range(TOTAL - OVERSIZE)]
    lines += [b"x" * 2000] * OVERSIZE
    messages, i = [], 0
    while i < len(lines):
        take = 3 if i % 2 else 1
        messages.append(b"\n".join(lines[i:i + take]))
        i += take
    return messages


async def _publish(url: str, messages: list[bytes]) -> None:
    import nats

    client = await nats.connect(url)
    for n, message in enumerate(messages):
        await client.publish(f"logs.app{n % 3}", message)
        if n % 2000 == 0:
            await client.flush()
    await client.flush()
    js = client.jetstream()
    for _ in range(300):  # stored by the stream, not just sent
        if (await js.stream_info("LOGTALLY_LINES")).state.messages == len(messages):
            break
        await asyncio.sleep(0.1)
    await client.close()


@pytest.mark.slow
def test_kill_9_mid_stream_counts_every_line_exactly_once(nats_server: NatsServer, tmp_path: Path) -> None:
    workdir = tmp_path / "node"
    workdir.mkdir()
    node = ServerProcess(workdir, _config(nats_server.url))
    node.wait_log("nats_source_ready", timeout=30)
    messages = _messages()
    asyncio.run(_publish(nats_server.url, messages))
    node.wait_received(TOTAL // 2, timeout=120)
    node.stop(signal.SIGKILL)

    node = ServerProcess(workdir, _config(nats_server.url))
    try:
        ready = node.wait_log("nats_source_ready", timeout=30)
        assert 0 < ready["resume_after"] < len(messages)  # killed mid-stream, after a snapshot
        report = node.wait_received(TOTAL, timeout=120)
        # Long enough for a redelivery counted twice to show (snapshots are 0.3 s apart).
        node.wait_stats(lambda r: r["nats_source"]["acked_seq"] == len(messages), timeout=30)
        report = node.stats()
        assert report["received"] == TOTAL, report["nats_source"]
        assert report["received"] == report["parsed"] + sum(report["rejected"].values())
        assert report["rejected"].get("oversize") == OVERSIZE
        assert report["nats_source"]["applied_seq"] == len(messages)
    finally:
        node.stop()
