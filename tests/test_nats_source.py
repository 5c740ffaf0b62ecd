"""`[sources.nats]` against a real nats-server: lines published with nats-py are counted like TCP
lines, exactly once across a `kill -9` of the consuming daemon, by it and by the fleet view."""
from __future__ import annotations

import asyncio
import signal
import time
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
publish = "durable"
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
        # The fleet view (this node's own, rebuilt from the aggregate stream) counts each line once
        # too: a second went out only once the snapshot counting it was written, and the snapshot
        # kept the ones not yet out.
        for _ in range(600):
            if node.command("STATS all cluster")["received"] >= TOTAL and not node.stats()["cluster"]["held"]:
                break
            time.sleep(0.1)
        time.sleep(2.0)  # seconds still to come would show a line counted twice
        assert node.command("STATS all cluster")["received"] == TOTAL, node.stats()["cluster"]
    finally:
        node.stop()


async def _replace_consumer_with_ack_all(url: str, durable: str) -> None:
    """The consumer as an older logtallyd created it: cumulative acks, which the source no longer uses."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    client = await nats.connect(url)
    js = client.jetstream()
    try:
        await js.delete_consumer("LOGTALLY_LINES", durable)
    except NotFoundError:
        pass
    await js.add_consumer("LOGTALLY_LINES", ConsumerConfig(
        durable_name=durable, ack_policy=AckPolicy.ALL, deliver_policy=DeliverPolicy.ALL, filter_subject="logs.>"))
    await client.close()


async def _ack_policy(url: str, durable: str) -> str:
    import nats

    client = await nats.connect(url)
    info = await client.jetstream().consumer_info("LOGTALLY_LINES", durable)
    await client.close()
    return str(info.config.ack_policy)  # the response's plain string


def test_a_consumer_left_with_cumulative_acks_is_replaced_and_resumes_after_the_snapshot(
        nats_server: NatsServer, tmp_path: Path) -> None:
    first, second = [f"line {i}".encode() for i in range(300)], [f"more {i}".encode() for i in range(200)]
    workdir = tmp_path / "node"
    workdir.mkdir()
    node = ServerProcess(workdir, _config(nats_server.url))
    node.wait_log("nats_source_ready", timeout=30)
    asyncio.run(_publish(nats_server.url, first))
    node.wait_stats(lambda r: r["nats_source"]["acked_seq"] == len(first), timeout=60)
    node.stop()

    asyncio.run(_replace_consumer_with_ack_all(nats_server.url, "logtallyd-n1"))
    asyncio.run(_publish(nats_server.url, first + second))  # the stream holds the first lines too
    node = ServerProcess(workdir, _config(nats_server.url))
    try:
        node.wait_log("nats_consumer_recreated", timeout=30)
        node.wait_stats(lambda r: r["nats_source"]["acked_seq"] == 2 * len(first) + len(second), timeout=60)
        report = node.stats()
        assert report["received"] == 2 * len(first) + len(second), report["nats_source"]
        assert report["nats_source"]["duplicates"] == 0  # resumed after the snapshot, not from the start
        assert asyncio.run(_ack_policy(nats_server.url, "logtallyd-n1")) == "explicit"
    finally:
        node.stop()
    node = ServerProcess(workdir, _config(nats_server.url))  # the consumer it made is kept as it is
    try:
        node.wait_log("nats_source_ready", timeout=30)
        assert not [e for e in node.logs if e.get("event") == "nats_consumer_recreated"]
    finally:
        node.stop()
