"""Talking to the control port: one command, one JSON line back (or a stream of them).

The port is TCP (`HOST:PORT`) or the daemon's Unix socket (`unix:PATH`); with a token file the
client sends `AUTH` first on TCP, which the privileged commands (tail, prime jobs) need.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, AsyncIterator

UNIX_PREFIX = "unix:"


class ControlError(Exception):
    pass


def split_hostport(text: str, default_port: int) -> tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT`, `HOST` or `:PORT` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or (host and ":" in host and not host.endswith("]")):  # HOST, or a bare IPv6 address
        return text.strip("[]") or "127.0.0.1", default_port
    if not port.isdigit() or int(port) > 65535:
        raise ControlError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def unix_path(address: str) -> str | None:
    """The socket path of `unix:PATH` (or of an absolute path); None for a TCP address."""
    if address.startswith(UNIX_PREFIX):
        return address[len(UNIX_PREFIX):]
    return address if address.startswith("/") else None


def read_token(path: str) -> str:
    """The AUTH token in `path` (its first word), or a ControlError naming the file."""
    try:
        words = Path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise ControlError(f"token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(words) != 1:
        raise ControlError(f"token file {path}: expected one token (a single word)")
    return words[0]


class Control:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, address: str, token_file: str | None = None) -> Control:
        """Connect to `address`; on TCP with `token_file`, AUTH before anything else (the Unix
        socket needs no token: its file permissions already decided)."""
        path = unix_path(address)
        token = read_token(token_file) if token_file and path is None else None
        try:
            if path is not None:
                reader, writer = await asyncio.open_unix_connection(path, limit=64 << 20)
            else:
                host, port = split_hostport(address, 5141)
                address = f"{host}:{port}"
                reader, writer = await asyncio.open_connection(host, port, limit=64 << 20)
        except OSError as exc:
            raise ControlError(f"cannot reach logtallyd control port at {address}: {exc.strerror or exc}") from None
        control = cls(reader, writer)
        if token is not None:
            try:
                await control.ask(f"AUTH {token}")
            except ControlError as exc:
                await control.close()
                raise ControlError(f"AUTH with token file {token_file}: {exc}") from None
        return control

    async def send(self, command: str) -> None:
        self.writer.write(command.encode() + b"\n")
        await self.writer.drain()

    async def read(self) -> dict[str, Any]:
        try:
            line = await self.reader.readline()
        except (OSError, ValueError) as exc:  # reset by the peer; a line past the 64 MiB limit
            raise ControlError(f"reading from the control port: {exc}") from None
        if not line:
            raise ControlError("the server closed the connection")
        try:
            answer = json.loads(line)
        except ValueError:
            raise ControlError(f"not a logtallyd control port (answered {line[:60]!r})") from None
        if not isinstance(answer, dict):
            raise ControlError(f"unexpected answer {line[:60]!r}")
        return answer

    async def ask(self, command: str) -> dict[str, Any]:
        await self.send(command)
        answer = await self.read()
        if "error" in answer:
            raise ControlError(answer["error"])
        return answer

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.read()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


async def ask(address: str, command: str, token_file: str | None = None) -> dict[str, Any]:
    control = await Control.connect(address, token_file)
    try:
        return await control.ask(command)
    finally:
        await control.close()
