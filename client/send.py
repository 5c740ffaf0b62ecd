"""`logtally send`: stream files (plain or gzip) or stdin to logtallyd over TCP, several at once.

Each file gets its own connection; lines go out as they are (LF-terminated, the framing every
syslog sender understands) or RFC 6587 octet-counted. Only whole lines are written, so the
server sees the same lines whatever the chunking.
"""
from __future__ import annotations

import asyncio
import gzip
import sys
import time
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable

from logtally.control import split_hostport

_CHUNK = 1 << 20

# Told after each chunk: bytes of the file consumed (compressed bytes for a .gz), lines sent.
Progress = Callable[[int, int], None]


@dataclass
class Sent:
    name: str
    lines: int = 0
    bytes: int = 0
    error: str | None = None


_GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952 §2.3.1


def _open(path: str) -> tuple[BinaryIO, BinaryIO | None]:
    """(lines source, file on disk): stdin for `-` (no file); a gzip file by its magic bytes
    (rotated `.log.1.gz`, or no suffix at all), read through the open file so its position
    tells how much of the file is consumed."""
    if path == "-":
        return sys.stdin.buffer, None
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic != _GZIP_MAGIC:
        return raw, raw
    return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]


def _close(source: BinaryIO, raw: BinaryIO | None) -> None:
    if raw is None:
        return
    if source is not raw:
        source.close()  # a GzipFile leaves the file it was given open
    raw.close()


async def send_one(path: str, address: str, octet_count: bool, progress: Progress | None = None) -> Sent:
    result = Sent(path)
    host, port = split_hostport(address, 5140)
    try:
        source, raw = _open(path)
    except OSError as exc:
        result.error = exc.strerror or str(exc)
        return result
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        result.error = f"cannot connect to {host}:{port}: {exc.strerror or exc}"
        _close(source, raw)
        return result
    tail = b""
    consumed = 0
    try:
        while True:
            chunk = await asyncio.to_thread(source.read, _CHUNK)
            if not chunk:
                break
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            body, tail = data[:cut], data[cut:]
            lines = body.count(b"\n")
            if body:
                writer.write(_frame(body, octet_count))
                result.lines += lines
                result.bytes += len(body)
            if progress is not None:
                position = raw.tell() if raw is not None else consumed + len(chunk)
                progress(position - consumed, lines)
                consumed = position
            if body:
                await writer.drain()  # the server's backpressure slows us here
        if tail:  # a last line without newline is still a line
            writer.write(_frame(tail + b"\n", octet_count))
            result.lines += 1
            result.bytes += len(tail) + 1
        await writer.drain()
        if tail and progress is not None:
            progress(0, 1)
        writer.write_eof()
        writer.close()
        await writer.wait_closed()
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt .gz is EOFError/zlib.error
        result.error = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        writer.close()
    finally:
        _close(source, raw)
    return result


def _frame(body: bytes, octet_count: bool) -> bytes:
    """LF-terminated lines as they are, or (`--octet-count`) each syslog line octet-counted."""
    if not octet_count:
        return body
    # RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`. Only a syslog message (it opens
    # with `<PRI>`) may be sent this way: logtallyd, like any receiver that must also take plain
    # lines such as `10.1.3.6 - - [...]`, reads a digit-led frame as octet-counted only when the
    # count is followed by ` <`. Other lines keep their LF (§3.4.2); the receiver decides per frame.
    out = []
    for line in body.split(b"\n")[:-1]:
        out.append(b"%d %s" % (len(line), line) if line.startswith(b"<") else line + b"\n")
    return b"".join(out)


async def send_all(paths: list[str], address: str, concurrency: int, octet_count: bool,
                   progress: Progress | None = None) -> tuple[list[Sent], float]:
    started = time.monotonic()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def bounded(path: str) -> Sent:
        async with gate:
            return await send_one(path, address, octet_count, progress)

    results = await asyncio.gather(*(bounded(p) for p in paths))
    return list(results), time.monotonic() - started
