"""The control port: a line protocol (one command per line, one JSON line per answer).

Works by hand with `nc 127.0.0.1 5141`. Commands on one connection run in order; a connection
that has subscribed keeps reading commands (UNSUBSCRIBE, or any other query) while it streams.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import msgspec
import structlog

from server.publish.pubsub import Hub, Subscriber

log = structlog.get_logger()

_json = msgspec.json.Encoder()
_MAX_COMMAND = 4096

Answer = dict[str, Any] | AsyncIterator[dict[str, Any]] | None
Handler = Callable[["ControlConnection", str], Awaitable[Answer]]


class ControlConnection(asyncio.Protocol):
    def __init__(self, handler: Handler, hub: Hub, queue_size: int, registry: set[ControlConnection], limit: int) -> None:
        self.handler = handler
        self.hub = hub
        self.queue_size = queue_size
        self.registry = registry
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.subscriber: Subscriber | None = None
        self.peer = "?"
        self._buffer = bytearray()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = str(transport.get_extra_info("peername"))
        if len(self.registry) >= self.limit:
            transport.write(_json.encode({"error": "too many control connections"}) + b"\n")  # type: ignore[attr-defined]
            transport.close()
            return
        self.registry.add(self)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            idx = self._buffer.find(b"\n")
            if idx < 0:
                if len(self._buffer) > _MAX_COMMAND:
                    self._buffer.clear()
                    self.send({"error": f"command longer than {_MAX_COMMAND} bytes"})
                return
            raw = bytes(self._buffer[:idx]).strip()
            del self._buffer[: idx + 1]
            if raw:
                self._lines.put_nowait(raw.decode("utf-8", "replace"))

    def eof_received(self) -> bool | None:
        # `echo STATS | nc host port` half-closes after the command: answer, then close.
        self._lines.put_nowait(None)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        if self.subscriber is not None:
            self.hub.remove(self.subscriber)
        if self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        if self.subscriber is not None:
            self.subscriber.pause_writing()

    def resume_writing(self) -> None:
        if self.subscriber is not None:
            self.subscriber.resume_writing()

    # -- commands ----------------------------------------------------------------------------

    async def _serve(self) -> None:
        while True:
            line = await self._lines.get()
            if line is None:
                break
            try:
                answer = await self.handler(self, line)
                if answer is None:
                    continue
                if isinstance(answer, dict):
                    self.send(answer)
                else:
                    async for item in answer:
                        self.send(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in one command must not kill the connection
                log.exception("control_command_failed", command=line[:100])
                self.send({"error": f"internal error: {exc!r}"})
        # End of input: answer what was asked, then close, subscribed or not. A subscriber that
        # went away would otherwise linger until something is written to it (quiet topics
        # never are). Streaming by hand works with `nc` (it keeps its side open).
        if self.transport is not None:
            self.transport.close()

    def send(self, obj: Any) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        line = _json.encode(obj) + b"\n"
        if self.subscriber is not None and self.subscriber.topics:
            self.subscriber.offer(line)  # keep answers in order with the stream
        else:
            self.transport.write(line)

    def subscribe(self, topics: list[str]) -> Subscriber:
        if self.subscriber is None:
            assert self.transport is not None
            self.subscriber = Subscriber(self.transport, self.queue_size, time.monotonic)
            if self.transport.get_write_buffer_size() > self.transport.get_write_buffer_limits()[1]:
                self.subscriber.pause_writing()
            self.hub.add(self.subscriber)
        self.subscriber.topics.update(topics)
        return self.subscriber

    def unsubscribe(self, topics: list[str] | None = None) -> None:
        if self.subscriber is None:
            return
        if topics:
            self.subscriber.topics.difference_update(topics)
        else:
            self.subscriber.topics.clear()
        if not self.subscriber.topics:
            self.subscriber.flush()
            self.hub.remove(self.subscriber)
            self.subscriber = None
