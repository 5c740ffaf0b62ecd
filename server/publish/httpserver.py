"""The `[http]` listener's connection shell: uvicorn's h11 protocol serving the ASGI app
(`logtallyd.publish.api`) on a socket the daemon opened, on the daemon's own loop, with the
`[http]` limits applied per connection and counted in `HttpConnections`.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import h11
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from logtallyd.publish.http import HttpConnections

__all__ = ["BoundedH11", "counting_responses", "serve_http"]


class BoundedH11(H11Protocol):
    """uvicorn's h11 protocol with the three `[http]` limits as this daemon means them.

    uvicorn's own knobs do not cover them: `limit_concurrency` accepts the connection (its
    descriptor stays taken) and answers 503 only once a request arrives; `timeout_keep_alive` runs
    only between requests and stops at the first byte, so a client trickling a head is never
    closed; `h11_max_incomplete_event_size` only checks heads still incomplete, so a large head in
    one read passes. Here the cap closes at once, the idle deadline runs until a whole head is in,
    and the head size is checked on whatever the reads were.
    """

    def __init__(self, config: UvicornConfig, server_state: ServerState, app_state: dict[str, Any],
                 connections: HttpConnections, _loop: asyncio.AbstractEventLoop | None = None) -> None:
        # Each request's `scope["state"]` is a copy of this: the SSE route finds its connection
        # there, to close it under the stalled-client policy.
        super().__init__(config, server_state, {**app_state, "http_connection": self}, _loop)
        self.limits = connections.config
        self.pool = connections
        self.timeout_keep_alive = self.limits.idle_timeout_s
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.pool.open) >= self.limits.max_connections:
            self.pool.closed("max_connections")
            self.transport = transport
            transport.abort()
            return
        super().connection_made(transport)
        self.pool.open.add(self)
        self.pool.total += 1
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        if self in self.pool.open:
            self.pool.open.discard(self)
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:  # these bytes belong to a request head
            pending = self.conn.trailing_data[0] + data
            end = pending.find(b"\r\n\r\n")
            if end < 0:
                end = pending.find(b"\n\n")
            if (end if end >= 0 else len(pending)) > self.limits.max_head_bytes:
                self.pool.closed("head_too_large")
                self._refuse(b"request head too large\n")
                return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a whole head arrived: the app has it now
            self._disarm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_deadline()  # the next request's head is held to the same deadline

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this when h11 refuses the bytes; counted here, and its per-request warning
        # is off (see serve_http) so a flood of garbage cannot flood the log.
        self.pool.closed("bad_request")
        self.pool.responded(400)
        super().send_400_response(msg)

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self.pool.closed("idle_timeout")
        super().timeout_keep_alive_handler()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.limits.idle_timeout_s, self._head_timeout)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timeout(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.pool.closed("idle_timeout")
            self.transport.abort()

    def _refuse(self, body: bytes) -> None:
        """400 with a length (h11 would chunk a body whose request it has not read) and close."""
        self._disarm_head_deadline()
        self.pool.responded(400)
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        events = (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                  h11.EndOfMessage())
        self.transport.write(b"".join(self.conn.send(event) or b"" for event in events))  # one segment
        self.transport.close()


def counting_responses(app: Any, connections: HttpConnections) -> Any:
    """ASGI middleware: each response's status class counted as it starts (an SSE stream when it opens)."""

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                connections.responded(message["status"])
            await send(message)

        await app(scope, receive, sending)

    return counted


async def serve_http(app: Any, connections: HttpConnections, sock: socket.socket) -> asyncio.AbstractServer:
    """Serve `app` on the listening `sock` from the running loop. uvicorn's `Server` is not used:
    it owns signals and a shutdown sequence, which are the daemon's; only its protocol is."""
    limits = connections.config
    config = UvicornConfig(
        counting_responses(app, connections), http=BoundedH11, ws="none", lifespan="off", log_config=None, access_log=False,
        proxy_headers=False, server_header=False, date_header=False,
        # A backstop behind BoundedH11's own check; h11 answers 400 to a head past it too.
        h11_max_incomplete_event_size=limits.max_head_bytes + 4,
        timeout_keep_alive=int(max(1, limits.idle_timeout_s)),
    )
    config.load()
    logging.getLogger("uvicorn.error").setLevel(logging.ERROR)  # bad requests are counted instead
    state = ServerState()
    connections.states.append(state)
    loop = asyncio.get_running_loop()

    def factory() -> BoundedH11:
        return BoundedH11(config, state, {}, connections, loop)

    return await loop.create_server(factory, sock=sock, backlog=1024)
