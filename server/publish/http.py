"""The `[http]` listener's connections: their limits, counts (STATS `http_server`) and shutdown.
The shell that serves them (`logtallyd.publish.httpserver`) imports uvicorn; this module does
not, so the daemon holds its counts before it loads the HTTP stack.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal, Protocol

import msgspec

from logtallyd.publish.config import HttpConfig

if TYPE_CHECKING:
    from uvicorn.server import ServerState

__all__ = ["HttpCloseReason", "HttpConfig", "HttpConnections", "HttpFigures"]

# Why a connection was closed without an answer to a whole request: keys of `closed_by`.
HttpCloseReason = Literal[
    "max_connections",  # `http.max_connections` were open: closed at once
    "idle_timeout",  # no whole request head within `http.idle_timeout_s`
    "head_too_large",  # a request head past `http.max_head_bytes` (answered 400)
    "bad_request",  # bytes that are no HTTP/1.1 request (h11 refused them; answered 400)
]


class HttpFigures(msgspec.Struct):
    """STATS `http_server` (present while `[http] listen` is set); `responses_by_class` counts the
    responses sent ("2xx", "4xx", ...), the 400s to bytes that were no request included."""

    open: int
    total: int
    closed_by: dict[str, int]
    responses_by_class: dict[str, int]


class Connection(Protocol):
    """What the pool needs of one connection (`httpserver.BoundedH11`): its transport, to drop it."""

    transport: asyncio.Transport


class HttpConnections:
    """Every open HTTP connection, whichever listener accepted it: the limits and the counts."""

    def __init__(self, config: HttpConfig = HttpConfig()) -> None:
        self.config = config
        self.open: set[Connection] = set()
        self.total = 0
        self.closed_by: dict[str, int] = {}
        self.responses_by_class: dict[str, int] = {}
        self.states: list[ServerState] = []  # one per listener served: its running ASGI tasks

    async def close(self, grace_s: float) -> None:
        """Shutdown, once the SSE streams were told to end: give the requests in flight `grace_s`
        to finish, then drop every connection (and let the requests see it)."""
        for step in ("finish", "abort"):
            if step == "abort":
                for connection in list(self.open):
                    connection.transport.abort()
            tasks = {task for state in self.states for task in state.tasks}
            if tasks:
                await asyncio.wait(tasks, timeout=grace_s)

    def reconfigure(self, config: HttpConfig) -> None:
        """SIGHUP: the new limits apply to the next connection."""
        self.config = config

    def figures(self) -> HttpFigures:
        return HttpFigures(len(self.open), self.total, dict(self.closed_by),
                           dict(sorted(self.responses_by_class.items())))

    def closed(self, reason: HttpCloseReason) -> None:
        self.closed_by[reason] = self.closed_by.get(reason, 0) + 1

    def responded(self, status: int) -> None:
        key = f"{status // 100}xx"
        self.responses_by_class[key] = self.responses_by_class.get(key, 0) + 1
