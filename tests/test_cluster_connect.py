"""`[cluster]`'s NATS connection against a real nats-server: options from the config, retry until
the server answers, and the secrets read from their files."""
from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from logtallyd.cluster.config import ClusterConfig
from logtallyd.cluster.connect import connect, connect_options, node_name
from logtallyd.daemon.config import ConfigError, decode_config


def test_node_defaults_to_a_subject_token_of_the_host_name() -> None:
    assert node_name(ClusterConfig(node="web-1")) == "web-1"
    name = node_name(ClusterConfig())
    assert name and all(c.isalnum() or c in "_-" for c in name) and len(name) <= 64


@pytest.mark.parametrize("node", ["a.b", "with space", "x" * 65, "logs>"])
def test_a_node_name_that_is_no_subject_token_is_refused(node: str) -> None:
    with pytest.raises(ConfigError, match=r"cluster\.node"):
        decode_config({"cluster": {"node": node}})


def test_options_read_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    (tmp_path / "password").write_text("pw\nignored\n")
    config = ClusterConfig(nats="nats://a:4222, nats://b:4222", token_file=str(tmp_path / "token"),
                           user="u", password_file=str(tmp_path / "password"), reconnect_wait_s=0.5)
    options = connect_options(config, "n1")
    assert options["servers"] == ["nats://a:4222", "nats://b:4222"]
    assert (options["token"], options["user"], options["password"]) == ("s3cret", "u", "pw")
    assert options["name"] == "logtallyd-n1" and options["max_reconnect_attempts"] == -1
    assert options["reconnect_time_wait"] == 0.5


def test_connect_round_trip(nats_server) -> None:
    async def main() -> bytes:
        client = await connect(ClusterConfig(nats=nats_server.url), "n1", retry=False)
        sub = await client.subscribe("t.x")
        await client.publish("t.x", b"hello")
        message = await sub.next_msg(timeout=5)
        await client.close()
        return message.data

    assert asyncio.run(main()) == b"hello"


def test_connect_waits_for_a_server_that_comes_up_later(nats_server) -> None:
    nats_server.stop()

    async def main() -> bool:
        config = ClusterConfig(nats=nats_server.url, reconnect_wait_s=0.2, connect_timeout_s=0.5)
        task = asyncio.ensure_future(connect(config, "n1"))
        await asyncio.sleep(1.0)
        assert not task.done()  # still trying, not failed
        await asyncio.to_thread(nats_server.start)
        client = await asyncio.wait_for(task, 20)
        ok = client.is_connected
        await client.close()
        return ok

    assert asyncio.run(main())


def test_without_retry_an_absent_server_raises(nats_server) -> None:
    nats_server.stop()

    async def main() -> None:
        await connect(ClusterConfig(nats=nats_server.url, connect_timeout_s=0.5), "n1", retry=False)

    with pytest.raises(Exception):
        asyncio.run(main())


def test_cluster_section_defaults_off() -> None:
    assert msgspec.convert({}, ClusterConfig).nats == ""
