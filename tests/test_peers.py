"""Per-peer limits: the token bucket and the bounded table with plain values, then a real daemon
refusing a peer's extra connections, pausing its TCP reads past its rate (nothing lost) and
counting its UDP datagrams past it as `rate_limited`."""
from __future__ import annotations

import socket

import pytest

from logtallyd.ingest.peers import Bucket, Peers
from tests.conftest import ServerProcess, metric, send_tcp


# (rate, burst, [(now, lines charged)], delays): the seconds each charge makes the sender wait.
CHARGES = [
    (10.0, 5, [(0.0, 5), (0.0, 5), (0.5, 5), (2.0, 1)], [0.0, 0.5, 0.5, 0.0]),
    (0.0, 1, [(0.0, 10**6)], [0.0]),  # 0 = unlimited
    (100.0, 100, [(0.0, 4000)], [39.0]),  # one read far past the burst: one long wait
]


@pytest.mark.parametrize(("rate", "burst", "charges", "delays"), CHARGES)
def test_bucket_charge(rate: float, burst: int, charges: list[tuple[float, int]], delays: list[float]) -> None:
    bucket = Bucket(rate, burst, 0.0)
    assert [pytest.approx(bucket.charge(n, now)) for now, n in charges] == delays


def test_bucket_take() -> None:
    bucket = Bucket(2.0, 2, 0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert [bucket.take(0.5), bucket.take(0.5)] == [True, False]
    assert Bucket(0.0, 1, 0.0).take(0.0)  # unlimited


def test_table_is_bounded_and_keeps_connected_peers() -> None:
    peers = Peers(max_peers=2, lines_per_s=0.0, burst_lines=1, report=10)
    held = peers.get("a", 0.0, connecting=True)
    for host in ("b", "c", "d"):
        peers.get(host, 0.0)
    assert list(peers.table) == ["a", "d"] and peers.evicted == 2  # `a` is pinned by its connection
    peers.disconnected(held)
    peers.get("e", 0.0)
    assert list(peers.table) == ["d", "e"] and peers.evicted == 3


def test_figures_list_the_top_peers_by_lines() -> None:
    peers = Peers(max_peers=10, lines_per_s=0.0, burst_lines=1, report=2)
    for host, lines in (("a", 5), ("b", 50), ("c", 7)):
        peers.get(host, 0.0).lines = lines
    figures = peers.figures()
    assert figures.tracked == 3 and figures.evicted == 0
    assert [(p.peer, p.lines) for p in figures.top] == [("b", 50), ("c", 7)]
    assert Peers(10, 0.0, 1, 0).figures().top == []


def connect_from(server: ServerProcess, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect(server.address("tcp"))
    return sock


def test_connections_per_peer_are_capped_per_source_address(start_server) -> None:
    server = start_server("[ingest]\nmax_connections_per_peer = 2\npeer_report = 1\n")
    held = [connect_from(server, "127.0.0.1") for _ in range(2)]  # exactly at the limit
    server.wait_stats(lambda r: r["connections"]["open"] == 2)
    third = connect_from(server, "127.0.0.1")
    try:
        assert third.recv(1) == b""
    except ConnectionResetError:
        pass
    other = connect_from(server, "127.0.0.2")  # another address has its own allowance
    other.sendall(b"a line\n" * 3)
    other.close()
    for sock in held:
        sock.sendall(b"a line\n" * 2)
        sock.close()
    report = server.wait_received(7)
    assert report["received"] == 7
    assert report["connections"]["refused_by"] == {"max_connections_per_peer": 1}
    report = server.wait_stats(lambda r: r["connections"]["open"] == 0)
    assert report["peers"] == {"tracked": 2, "evicted": 0, "top": [
        {"peer": "127.0.0.1", "lines": 4, "connections": 0, "rate_pauses": 0, "rate_dropped": 0},
    ]}


def test_tcp_past_its_rate_is_paused_not_lost(start_server) -> None:
    server = start_server("[ingest]\npeer_lines_per_s = 400\npeer_burst_lines = 100\n")
    send_tcp(server.address("tcp"), b"".join(b"line %d\n" % i for i in range(800)))
    report = server.wait_received(800)
    assert report["received"] == report["parsed"] == 800 and report["rejected"] == {}
    row = report["peers"]["top"][0]
    assert row["peer"] == "127.0.0.1" and row["lines"] == 800 and row["rate_dropped"] == 0
    assert row["rate_pauses"] >= 1  # 800 lines against a burst of 100 cannot pass without a wait
    assert server.wait_log("peer_rate_paused")["peer"].startswith("127.0.0.1:")


def test_udp_past_its_rate_is_rejected_and_counted(start_server) -> None:
    # One token per 1000 s: after the burst of 10 nothing refills while the test runs.
    server = start_server("[ingest]\npeer_lines_per_s = 0.001\npeer_burst_lines = 10\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for i in range(50):
            udp.sendto(b"datagram %d" % i, server.address("udp"))
    report = server.wait_received(50)
    assert report["received"] == 50 and report["parsed"] == 10
    assert report["rejected"] == {"rate_limited": 40}
    assert report["peers"]["top"][0] == {"peer": "127.0.0.1", "lines": 50, "connections": 0, "rate_pauses": 0,
                                         "rate_dropped": 40}
    metrics = server.command("METRICS")["metrics"]
    assert metric(metrics, "logtally_lines_rejected_total", reason="rate_limited") == 40


def test_rate_limited_datagrams_are_in_the_final_count(start_server) -> None:
    server = start_server("[ingest]\npeer_lines_per_s = 0.001\npeer_burst_lines = 1\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for i in range(20):
            udp.sendto(b"datagram %d" % i, server.address("udp"))
    server.wait_received(20)
    assert server.stop() == 0
    stopped = server.wait_log("stopped")
    assert (stopped["received"], stopped["parsed"], stopped["rejected"], stopped["balanced"]) == (20, 1, 19, True)


def test_reconfigure_reaches_every_tracked_bucket_and_the_bound() -> None:
    peers = Peers(max_peers=10, lines_per_s=0.0, burst_lines=100, report=10)
    for host in "abc":
        peers.get(host, 0.0)
    peers.reconfigure(max_peers=2, lines_per_s=5.0, burst_lines=3, report=1)
    assert list(peers.table) == ["b", "c"] and peers.evicted == 1
    bucket = peers.table["c"].bucket
    assert (bucket.rate, bucket.burst, bucket.tokens) == (5.0, 3, 3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert len(peers.figures().top) == 1
