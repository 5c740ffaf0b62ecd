"""Talking to the control port: one command, one JSON line back (or a stream of them)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator


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


class Control:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, address: str) -> Control:
        host, port = split_hostport(address, 5141)
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=64 << 20)
        except OSError as exc:
            raise ControlError(f"cannot reach logtallyd control port at {host}:{port}: {exc.strerror or exc}") from None
        return cls(reader, writer)

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


async def ask(address: str, command: str) -> dict[str, Any]:
    control = await Control.connect(address)
    try:
        return await control.ask(command)
    finally:
        await control.close()
