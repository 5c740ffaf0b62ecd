"""The control port's connection: lines in, one JSON line per answer out (a stream for some).

Works by hand with `nc 127.0.0.1 5141` (or `nc -U` on the Unix socket). Commands on one connection
run in order, and a subscribed connection keeps reading commands while it streams; this shell owns
the socket, the subscription and the connection's access, and carries out what `commands.py` answers.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Callable

import msgspec
import structlog

from logtallyd.publish.access import Access, redacted
from logtallyd.publish.commands import Commands
from logtallyd.publish.lines import LineReader
from logtallyd.publish.protocol import (
    Answer, Authorized, Close, CommandError, Deny, Error, Grant, Join, Leave, Subscribed, Unsubscribed,
    decode_command,
)
from logtallyd.publish.pubsub import Hub, Subscriber

log = structlog.get_logger()

_json = msgspec.json.Encoder()


class ControlConnection(asyncio.Protocol):
    """`access` is what the listener grants before any AUTH: "unix" on the Unix socket, else "anonymous"."""

    def __init__(self, commands: Commands, hub: Hub, registry: set[ControlConnection], max_connections: int,
                 on_tail_change: Callable[[], None], access: Access = "anonymous") -> None:
        self.commands = commands
        self.access: Access = access
        self.way_in = "unix" if access == "unix" else "tcp"  # what the cap counts (AUTH changes access)
        self.hub = hub
        self.registry = registry
        self.max_connections = max_connections
        self.on_tail_change = on_tail_change  # the workers' tail filters follow the subscriptions
        self.transport: asyncio.Transport | None = None
        self.subscriber: Subscriber | None = None
        self.peer = "?"
        self.source = "?"
        self._reader = LineReader(commands.limits.max_command_bytes)
        self._lines: asyncio.Queue[str | CommandError | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._writable = asyncio.Event()  # cleared while the transport's write buffer is full
        self._writable.set()

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peername = transport.get_extra_info("peername")
        self.peer = str(peername)
        self.source = peername[0] if isinstance(peername, tuple) and peername else "unix"  # AUTH throttles per source
        # Each way in has its own cap: idle TCP clients must not lock the trusted Unix socket out.
        if sum(1 for c in self.registry if c.way_in == self.way_in) >= self.max_connections:
            transport.write(_json.encode(Error("too many control connections")) + b"\n")  # type: ignore[attr-defined]
            transport.close()
            return
        self.registry.add(self)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        for line in self._reader.feed(data):
            self._lines.put_nowait(line)
        if self._lines.qsize() >= self.max_pending and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

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
        self._writable.clear()
        if self.subscriber is not None:
            self.subscriber.pause_writing()

    def resume_writing(self) -> None:
        self._writable.set()
        if self.subscriber is not None:
            self.subscriber.resume_writing()

    @property
    def max_pending(self) -> int:
        return self.commands.max_pending_commands

    # -- commands ----------------------------------------------------------------------------

    async def _serve(self) -> None:
        while (line := await self._lines.get()) is not None:
            if self._reading_paused and self._lines.qsize() <= self.max_pending // 2 and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            # Answers wait while this client's unread answers fill the write buffer; the turn
            # goes back to the loop after each command, so one client cannot hold it.
            await self._writable.wait()
            await asyncio.sleep(0)
            command = line if isinstance(line, CommandError) else decode_command(line, self.commands.limits)
            try:
                if not await self._apply(await self.commands.answer(command, self.access, self.source)):
                    break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in one command must not kill the connection
                log.exception("control_command_failed", command=redacted(str(line))[:100])
                self.send(Error(f"internal error: {exc!r}"))
        # End of input (or QUIT): answer what was asked, then close, subscribed or not. A
        # subscriber that went away would otherwise linger until something is written to it
        # (quiet topics never are). Streaming by hand works with `nc` (it keeps its side open).
        if self.transport is not None:
            self.transport.close()

    async def _apply(self, answer: Answer) -> bool:
        """Carry out one answer; False when the connection is to close."""
        match answer:
            case Close():
                return False
            case Grant():
                if self.access == "anonymous":  # the Unix socket's access is already the widest
                    self.access = "token"
                self.send(Authorized())
            case Deny(error):
                self.send(Error(error))
                return False
            case Join(topics, interval_s, tail_filter, tail_terms):
                already = self.subscriber.topics if self.subscriber is not None else set()
                self.send(Subscribed(sorted(set(topics) | already)))
                sub = self.subscribe(list(topics))
                sub.interval_s = interval_s
                if "tail" in topics:
                    sub.tail_filter = tail_filter
                    sub.tail_terms = tail_terms
                    self.on_tail_change()
            case Leave(topics):
                self.unsubscribe(list(topics) or None)
                self.on_tail_change()
                self.send(Unsubscribed(list(topics) or "all"))
            case AsyncIterator():
                async for item in answer:
                    self.send(item)
            case _:
                self.send(answer)
        return True

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
            self.subscriber = Subscriber(self.transport, self.hub.queue_size, time.monotonic)
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
