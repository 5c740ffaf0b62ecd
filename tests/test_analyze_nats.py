"""`logtallyd analyze --nats`: batches parsed by two real daemons through a JetStream work queue
give the report a local `analyze` gives; with no node serving the queue it fails clearly."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, NatsServer, ServerProcess

# Seconds counted from "now": two runs a moment apart differ there and nowhere else.
TIMING = {"anchor", "lines_per_s"}


def _analyze(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logtallyd", "analyze", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _without_timing(report: Any) -> Any:
    if isinstance(report, dict):
        return {k: _without_timing(v) for k, v in report.items() if k not in TIMING}
    if isinstance(report, list):
        return [_without_timing(v) for v in report]
    return report


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A directory of mixed logs with their own timestamps: syslog, access, app lines and junk."""
    directory = tmp_path / "logs"
    (directory / "web").mkdir(parents=True)
    levels = ("INFO", "WARN", "ERROR", "DEBUG")
    with open(directory / "app.log", "w") as f:
        for i in range(6000):
            second = 1_738_238_400 + i // 20
            stamp = f"2025-01-30T{(second // 3600) % 24:02d}:{(second // 60) % 60:02d}:{second % 60:02d}Z"
            if i % 3 == 0:
                f.write(f"<{8 + i % 8}>1 {stamp} host{i % 5} app{i % 4} {i % 90} - - "
                        f"Database connection failed for user {i % 37}\n")
            elif i % 3 == 1:
                f.write(f"{stamp} {levels[i % 4]} worker-{i % 6} request {i} took {i % 311} ms\n")
            else:
                f.write("not a log line at all\n" if i % 50 == 2 else f"<13>Jan 30 12:{i % 60:02d}:00 h{i % 3} sshd[{i}]: Failed password for root from 10.0.{i % 7}.{i % 200} port 22\n")
    with open(directory / "web" / "access.log", "w") as f:
        for i in range(6000):
            f.write(f'10.1.{i % 13}.{i % 251} - - [30/Jan/2025:12:{(i // 100) % 60:02d}:{i % 60:02d} +0000] '
                    f'"GET /p/{i % 29} HTTP/1.1" {200 + (i % 5) * 100} {i % 4000} "-" "agent/{i % 9}"\n')
    return directory


@pytest.mark.slow
def test_two_nodes_give_the_local_report(nats_server: NatsServer, logs: Path, tmp_path: Path) -> None:
    nodes = []
    for name in ("n1", "n2"):
        workdir = tmp_path / name
        workdir.mkdir()
        node = ServerProcess(workdir, f'[pipeline]\nworkers = 1\n[cluster]\nnats = "{nats_server.url}"\nnode = "{name}"\n')
        nodes.append(node)
    try:
        for node in nodes:
            node.wait_log("analyze_queue_ready", timeout=30)
        config = tmp_path / "analyze.toml"
        config.write_text("[pipeline]\nbatch_lines = 500\n")  # many batches, so both nodes get some
        common = ["--json", "--events", "--config", str(config), str(logs)]
        local = _analyze(["--workers", "1", *common])
        fleet = _analyze(["--nats", nats_server.url, *common])
        assert local.returncode == 0, local.stderr
        assert fleet.returncode == 0, fleet.stderr
        local_report, fleet_report = json.loads(local.stdout), json.loads(fleet.stdout)
        assert local_report["received"] > 10_000
        assert _without_timing(fleet_report) == _without_timing(local_report)
        assert "batches parsed by n1, n2" in fleet.stderr
    finally:
        for node in nodes:
            node.stop()


def test_no_node_is_a_clear_error(nats_server: NatsServer, logs: Path) -> None:
    done = _analyze(["--nats", nats_server.url, "--nats-timeout", "2", "--json", str(logs)], timeout=60)
    assert done.returncode == 3
    assert "no node answered for 2 s" in done.stderr and "[cluster] nats" in done.stderr


async def _wait_ack_pending(url: str, timeout: float = 60.0) -> int:
    """Until a node holds a batch it has not acknowledged (it is parsing it)."""
    import asyncio

    import nats

    from logtallyd.pool.workqueue import DURABLE, STREAM

    client = await nats.connect(url)
    try:
        js = client.jetstream()
        for _ in range(int(timeout / 0.05)):
            try:
                info = await js.consumer_info(STREAM, DURABLE)
                if info.num_ack_pending:
                    return info.num_ack_pending
            except Exception:  # the consumer is not made yet
                pass
            await asyncio.sleep(0.05)
        return 0
    finally:
        await client.close()


async def _consumer_ack_wait(url: str) -> float:
    """The shared work-queue consumer's ack wait, as the node set it from `[cluster]`."""
    import nats

    from logtallyd.pool.workqueue import DURABLE, STREAM

    client = await nats.connect(url)
    try:
        info = await client.jetstream().consumer_info(STREAM, DURABLE)
        return float(info.config.ack_wait)
    finally:
        await client.close()


@pytest.mark.slow
def test_a_node_killed_mid_batch_hands_its_batch_to_another(nats_server: NatsServer, logs: Path,
                                                             tmp_path: Path) -> None:
    import asyncio
    import signal

    def node(name: str) -> ServerProcess:
        workdir = tmp_path / name
        workdir.mkdir()
        server = ServerProcess(workdir, f'[pipeline]\nworkers = 1\n[cluster]\nnats = "{nats_server.url}"\nnode = "{name}"\n'
                                          # the batch the killed node held is redelivered after 3 s, not 30
                                          'analyze_ack_wait_s = 3\n')
        server.wait_log("analyze_queue_ready", timeout=30)
        return server

    config = tmp_path / "analyze.toml"
    config.write_text("[pipeline]\nbatch_lines = 500\n")
    common = ["--json", "--config", str(config), str(logs)]
    first = node("n1")
    fleet = subprocess.Popen([sys.executable, "-m", "logtallyd", "analyze", "--nats", nats_server.url,
                              "--nats-timeout", "90", *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    second = None
    try:
        assert asyncio.run(_wait_ack_pending(nats_server.url)) >= 1
        assert asyncio.run(_consumer_ack_wait(nats_server.url)) == 3.0
        first.stop(signal.SIGKILL)  # with a batch taken and not answered
        second = node("n2")
        out, err = fleet.communicate(timeout=180)
        assert fleet.returncode == 0, err
        local = _analyze(["--workers", "1", *common])
        assert _without_timing(json.loads(out)) == _without_timing(json.loads(local.stdout))
        assert "n2" in err
    finally:
        if fleet.poll() is None:
            fleet.kill()
        first.stop()
        if second is not None:
            second.stop()
