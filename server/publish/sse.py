"""Server-Sent Events for the HTTP API: a hub `Subscriber` whose "transport" hands its writes to
one ASGI response, so an SSE client gets the control port's stream lines with the same bounded
queue, `lagged` notices and stalled-client disconnect.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

from logtallyd.publish.pubsub import Hub, Subscriber

__all__ = ["SseSink", "end_streams", "sse_frames"]


def sse_frames(chunk: bytes) -> bytes:
    """JSON lines as SSE events, one `data:` event per line (WHATWG HTML §9.2.5)."""
    return b"".join(b"data: " + line + b"\n\n" for line in chunk.splitlines() if line)


class SseSink:
    """What the `Subscriber` writes to. A write is held until the response has sent the one
    before: until then the subscriber is paused, so what comes meanwhile waits in (and past its
    size is dropped from) the subscriber's own bounded queue, never here."""

    def __init__(self, abort: Callable[[], None]) -> None:
        self._abort = abort  # closes the HTTP connection (the stalled-client policy)
        self._pending: bytes = b""
        self._ready = asyncio.Event()
        self._closing = False
        self.subscriber: Subscriber | None = None

    # -- the transport interface the Subscriber uses -------------------------------------------

    def write(self, data: bytes) -> None:
        self._pending += data
        self._ready.set()
        if self.subscriber is not None and self.subscriber.writable:
            self.subscriber.pause_writing()

    def is_closing(self) -> bool:
        return self._closing

    def finish(self) -> None:
        """Shutdown: end the response after what is pending, so the client sees a whole stream."""
        self._closing = True
        self._ready.set()

    def abort(self) -> None:
        self._closing = True
        self._ready.set()
        self._abort()

    # -- the response side -----------------------------------------------------------------------

    async def stream(self, hub: Hub, subscriber: Subscriber) -> AsyncIterator[bytes]:
        """The response body: what the subscriber writes, as SSE events, until the client goes."""
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                chunk, self._pending = self._pending, b""
                if chunk:
                    yield sse_frames(chunk)  # returns once uvicorn has written it (flow control)
                if self._closing:
                    return
                subscriber.resume_writing()  # sends what queued meanwhile, or lets writes through
        finally:
            self._closing = True
            hub.remove(subscriber)


def end_streams(hub: Hub) -> None:
    """Shutdown: finish every SSE response the hub feeds (control subscribers are left alone)."""
    for subscriber in list(hub.subscribers):
        if isinstance(subscriber.transport, SseSink):
            subscriber.transport.finish()
