"""UDP kernel drops (logtallyd.ingest.udpdrops): the socket's drop counter, so every datagram
sent is either received or counted as dropped by the kernel."""
from __future__ import annotations

import socket
import time

from logtallyd.ingest.udpdrops import parse_drops, socket_drops
from tests.conftest import metric

TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  412: 0100007F:14B4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123456 2 0000000000000000 0
  413: 0100007F:14B5 00000000:0000 07 00000000:00003400 00:00000000 00000000     0        0 654321 2 0000000000000000 17
"""


def test_parse_drops_finds_the_row_of_the_inode() -> None:
    assert parse_drops(TABLE, 654321) == 17
    assert parse_drops(TABLE, 123456) == 0
    assert parse_drops(TABLE, 1) is None
    assert parse_drops("", 1) is None


def test_socket_drops_counts_what_a_full_buffer_loses() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    receiver.bind(("127.0.0.1", 0))
    assert socket_drops(receiver) == 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(500):  # nobody reads: the small buffer overflows
            sender.sendto(b"x" * 200, receiver.getsockname())
    receiver.setblocking(False)
    got = 0
    try:
        while True:
            receiver.recv(65536)
            got += 1
    except BlockingIOError:
        pass
    drops = socket_drops(receiver)
    assert drops is not None and drops > 0
    assert got + drops == 500
    receiver.close()


def test_stats_account_for_every_datagram_sent(start_server) -> None:
    server = start_server("[ingest]\nudp_receive_buffer = 4096\n")
    sent = 20_000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for i in range(sent):
            sender.sendto(b"<14>Jan 30 12:00:00 host app: flood %d" % i, server.address("udp"))
    deadline = time.monotonic() + 30
    while True:
        report = server.stats()
        if report["udp"]["datagrams"] + report["udp"]["kernel_drops"] == sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert report["udp"]["datagrams"] + report["udp"]["kernel_drops"] == sent
    server.wait_received(report["udp"]["datagrams"])
    metrics = server.command("METRICS")["metrics"]
    assert metric(metrics, "logtally_udp_kernel_drops_total") == report["udp"]["kernel_drops"]
