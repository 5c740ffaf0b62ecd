"""The TCP ingest shell (logtallyd.ingest.listeners) on the daemon's own loop, uvloop: flow
control as the pipeline asks for it, on real loopback sockets."""
from __future__ import annotations

import asyncio
import socket
import threading

import uvloop

from logtallyd.ingest.listeners import Connections, TcpIngest

LINE = b"<134>1 2025-01-30T12:00:00Z host app - - - a line of a sender's backlog\n"


class CountingPipeline:
    """What TcpIngest hands on: frames counted, no pool."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0

    def submit(self, frames: list[bytes], peer: str, listener: str = "tcp") -> None:
        self.frames += len(frames)
        self.bytes += sum(map(len, frames))

    def reject_frames(self, errors: list[object], peer: str) -> None:
        raise AssertionError(f"unexpected framing errors: {errors}")


async def _accepted_while_paused() -> tuple[int, int, int]:
    """(bytes read while paused, frames after resume, frames sent): a connection accepted while the
    pipeline holds every sender back starts paused, and reads all once resumed."""
    loop = asyncio.get_running_loop()
    connections = Connections(10, 60.0, 64 * 1024)
    pipeline = CountingPipeline()
    connections.pause()
    server = await loop.create_server(lambda: TcpIngest(connections, pipeline), "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    data = LINE * (8 * 1024 * 1024 // len(LINE))  # 8 MiB: far past what the kernel's buffers hold

    def send() -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(data)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    while not connections.open:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # time enough to read megabytes, were it reading
    read_paused = pipeline.bytes
    connections.resume()
    while sender.is_alive() or connections.open:
        await asyncio.sleep(0.01)
    server.close()
    return read_paused, pipeline.frames, len(data) // len(LINE)


def test_a_connection_accepted_while_paused_reads_nothing_until_resumed() -> None:
    # uvloop starts reading after `connection_made` returns, whatever it said there; one read
    # (256 KiB at most) may land before the pause is applied again.
    read_paused, frames, sent = uvloop.run(_accepted_while_paused())
    assert read_paused <= 256 * 1024
    assert frames == sent
