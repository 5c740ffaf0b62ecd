"""`logtide send`: stream files (plain or .gz) or stdin to logtided over TCP, several at once."""
from __future__ import annotations

import asyncio
import gzip
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO

from client.control import split_hostport

_CHUNK = 1 << 20


@dataclass
class Sent:
    name: str
    lines: int = 0
    bytes: int = 0
    error: str | None = None


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


async def send_one(path: str, address: str, octet_count: bool) -> Sent:
    result = Sent(path)
    host, port = split_hostport(address, 5140)
    try:
        source = _open(path)
    except OSError as exc:
        result.error = exc.strerror or str(exc)
        return result
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        result.error = f"cannot connect to {host}:{port}: {exc.strerror or exc}"
        return result
    tail = b""
    try:
        while True:
            chunk = await asyncio.to_thread(source.read, _CHUNK)
            if not chunk:
                break
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            body, tail = data[:cut], data[cut:]
            if body:
                writer.write(_frame(body, octet_count))
                result.lines += body.count(b"\n")
                result.bytes += len(body)
                await writer.drain()  # the server's backpressure slows us here
        if tail:  # a last line without newline is still a line
            writer.write(_frame(tail + b"\n", octet_count))
            result.lines += 1
            result.bytes += len(tail) + 1
        await writer.drain()
        writer.write_eof()
        writer.close()
        await writer.wait_closed()
    except OSError as exc:
        result.error = exc.strerror or str(exc)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    return result


def _frame(body: bytes, octet_count: bool) -> bytes:
    if not octet_count:
        return body
    # RFC 6587 §3.4.1 octet counting: `LEN SP MSG` per line.
    lines = body.split(b"\n")[:-1]
    return b"".join(b"%d %s" % (len(line), line) for line in lines)


async def send_all(paths: list[str], address: str, concurrency: int, octet_count: bool) -> tuple[list[Sent], float]:
    started = time.monotonic()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def bounded(path: str) -> Sent:
        async with gate:
            return await send_one(path, address, octet_count)

    results = await asyncio.gather(*(bounded(p) for p in paths))
    return list(results), time.monotonic() - started
