"""The HTTP API (FastAPI): `/metrics`, `/healthz`, `/readyz`, the read-only `/api/v1/...`
questions, each answered by the same `Commands.answer` the control port uses (so the JSON is the
control port's line for the same command), and `/openapi.json` with its `/docs` page.
"""
from __future__ import annotations

import hmac
from typing import Any, Callable

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from logtallyd.publish.access import Access
from logtallyd.publish.commands import Commands
from logtallyd.publish.dashboard import ASSETS, asset, live_page
from logtallyd.publish.protocol import (
    Alerts, Cluster, Command, CommandError, Error, Events, Join, Senders, Stats, Subscribed, Top, decode_command,
)
from logtallyd.publish.pubsub import TOPICS, Hub, Subscriber
from logtallyd.publish.sse import SseSink
from logtallyd.publish.tailfilter import compile_filter

__all__ = ["build_api"]

_json = msgspec.json.Encoder()


class BadParameter(Exception):
    """A query parameter the command layer would refuse: answered 400 naming it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


def _json_response(obj: Any, status: int = 200) -> Response:
    return Response(_json.encode(obj), status_code=status, media_type="application/json")


def _error(parameter: str | None, message: str, status: int = 400) -> Response:
    body: dict[str, Any] = {"error": message}
    if parameter is not None:
        body["parameter"] = parameter
    return _json_response(body, status)


# The probes stay open with a token set: an orchestrator's health check carries none. So do the
# dashboard page and its static files, which hold no figures: the page asks for the token and
# sends it with every question it asks.
_OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", *(f"/static/{name}" for name in ASSETS)})


class BearerGate:
    """ASGI middleware: while `token()` is set, every path but the open ones needs `Authorization:
    Bearer <token>` (RFC 6750 §2.1); otherwise 401 with `WWW-Authenticate: Bearer` (§3). Asked per
    request, so a token file changed and re-read on SIGHUP applies to the next request."""

    def __init__(self, app: Any, token: Callable[[], str | None]) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = self.token()
        if token is not None and scope["type"] == "http" and scope["path"] not in _OPEN_PATHS:
            given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
            # the scheme is case-insensitive (RFC 9110 §11.1), the token is not; compared in constant time
            if not hmac.compare_digest(given[:7].lower() + given[7:], b"bearer " + token.encode()):
                response = _error(None, "a bearer token is required: Authorization: Bearer <http.token_file>", 401)
                response.headers["www-authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_api(commands: Commands, hub: Hub, metrics: Callable[[str], tuple[bytes, str]], ready: Callable[[], bool],
              token: Callable[[], str | None] = lambda: None,
              on_tail_change: Callable[[], None] = lambda: None) -> FastAPI:
    """The ASGI app; `metrics(accept)` is the scrape body and its content type, `ready()` says
    whether the listeners are open and the worker pool warm, `token()` (when not None) is the bearer
    token every path but the open ones needs, and `on_tail_change()` tells the workers a `tail`
    stream came (its leaving goes through the hub)."""
    # FastAPIOffline: FastAPI with the Swagger UI assets served from its own package, not a CDN,
    # so /docs works on a host with no way out. No validator badge: it would call swagger.io.
    app = FastAPIOffline(docs_url="/docs", redoc_url=None, static_url="/docs/static", title="logtally",
                         version="1", swagger_ui_parameters={"validatorUrl": None},
                         description="Read-only statistics of a logtally daemon; the same answers as its control port.")
    app.add_middleware(BearerGate, token=token)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        return _error(str(first["loc"][-1]), f"{first['loc'][-1]}: {first['msg']}")

    @app.exception_handler(StarletteHTTPException)
    async def no_such_thing(request: Request, exc: StarletteHTTPException) -> Response:
        response = _error(None, str(exc.detail), exc.status_code)  # 404, 405: JSON like every error here
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> Response:
        return _error(exc.parameter, exc.message)

    async def ask(command: Command, parameter: str | None = None) -> Response:
        answer = await commands.answer(command, "anonymous")
        if isinstance(answer, Error):  # the command layer refused a value the request named
            return _error(parameter, answer.error)
        return _json_response(answer)

    def window_of(window: str) -> str:
        if window not in commands.limits.windows:
            raise BadParameter("window", f"unknown window {window!r}; windows: {', '.join(commands.limits.windows)}")
        return window

    @app.get("/metrics", summary="Prometheus exposition (the METRICS command's; OpenMetrics when Accept asks for it)")
    async def scrape(request: Request) -> Response:
        body, content_type = metrics(request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    @app.get("/healthz", summary="The process is up and its event loop answers")
    async def healthz() -> Response:
        return _json_response({"ok": True})

    @app.get("/readyz", summary="Every configured listener is open and the worker pool warm (503 until then)")
    async def readyz() -> Response:
        return _json_response({"ready": True}) if ready() else _json_response({"ready": False}, 503)

    # HEAD as well for the probes (the old /metrics server answered it); out of the schema, where
    # a second operation of the same handler would repeat its operation id.
    for path, probe in (("/metrics", scrape), ("/healthz", healthz), ("/readyz", readyz)):
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)

    # The dashboard: a page for people, out of the API's schema; its files are read once.
    page = live_page().encode()
    assets = {name: asset(name) for name in ASSETS}

    @app.get("/", include_in_schema=False)
    async def dashboard() -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in assets:
            raise StarletteHTTPException(404, "Not Found")
        return Response(assets[name], media_type=ASSETS[name], headers={"cache-control": "no-cache"})

    @app.get("/api/v1/stats", summary="STATS [window]")
    async def stats(window: str = "all", cluster: bool = False) -> Response:
        return await ask(Stats(window_of(window), cluster), "cluster")

    @app.get("/api/v1/top/{field}", summary="TOP <field> [n] [window]")
    async def top(field: str, n: int = 10, window: str = "all", cluster: bool = False) -> Response:
        if not 1 <= n <= commands.limits.max_top_n:
            raise BadParameter("n", f"n must be between 1 and {commands.limits.max_top_n}")
        return await ask(Top(field.lower(), n, window_of(window), cluster), "field")

    @app.get("/api/v1/cluster", summary="CLUSTER: every node of the fleet, up or down")
    async def cluster() -> Response:
        return await ask(Cluster(), "cluster")

    @app.get("/api/v1/events", summary="EVENTS [n] [cluster]: the last n anomaly events")
    async def events(n: int | None = None, cluster: bool = False) -> Response:
        if n is not None and n < 0:
            raise BadParameter("n", "n must be a non-negative count")
        return await ask(Events(commands.limits.default_events if n is None else n, cluster), "cluster")

    @app.get("/api/v1/alerts", summary="ALERTS: the alerts firing now and each route's counts")
    async def alerts() -> Response:
        return await ask(Alerts())

    @app.get("/api/v1/history", summary="HISTORY [series] [step] [since]: per-minute trends")
    async def history(series: str = "lines,errors,error_rate,latency_p95", step: int = 60,
                      since: str = "-6h") -> Response:
        command = decode_command(f"HISTORY {series} {step} {since}", commands.limits)
        if isinstance(command, CommandError):
            raise BadParameter(command.message.split()[0] if command.message.split()[0] in ("step", "since")
                               else "series", command.message)
        return await ask(command)

    @app.get("/api/v1/senders", summary="SENDERS: the ingest sender table")
    async def senders() -> Response:
        return await ask(Senders())

    @app.get("/api/v1/stream", summary="SUBSCRIBE as Server-Sent Events: one `data:` event per stream line",
             response_class=StreamingResponse)
    async def stream(request: Request, topics: str = "stats,anomalies", interval_s: float | None = None,
                     level: str | None = None) -> Response:
        """`level=error` keeps the `tail` records of that level or worse: the filter term
        `level>=error` of `SUBSCRIBE tail`, run by the same compiled filter."""
        words = [t.strip().lower() for t in topics.split(",") if t.strip()]
        if not words or any(w not in TOPICS for w in words):  # nor filter terms: those are tail's
            raise BadParameter("topics", f"topics: a comma-separated list of {', '.join(TOPICS)}")
        if level is not None:
            if "tail" not in words:
                raise BadParameter("level", "level filters the tail topic: add tail to topics")
            if isinstance(error := compile_filter([f"level>={level}"]), str):
                raise BadParameter("level", error)
        if interval_s is not None:
            words.append(f"interval={interval_s!r}")
        command = decode_command("SUBSCRIBE " + " ".join(words + ([f"level>={level}"] if level else [])),
                                 commands.limits)
        if isinstance(command, CommandError):
            raise BadParameter("interval_s" if interval_s is not None else "topics", command.message)
        # A request that passed the bearer token holds what AUTH grants on the control port (the
        # `tail` topic); without a token configured, HTTP is anonymous, as a TCP control client is.
        access: Access = "token" if token() is not None else "anonymous"
        join = await commands.answer(command, access)
        if isinstance(join, Error):  # tail needs the bearer token (AUTH's on the control port)
            return _error("topics", join.error, 403)
        assert isinstance(join, Join)
        connection = request.state.http_connection  # the BoundedH11 serving this request
        sink = SseSink(lambda: connection.transport.abort())
        subscriber = Subscriber(sink, hub.queue_size, hub.clock)  # type: ignore[arg-type]
        sink.subscriber = subscriber
        subscriber.topics.update(join.topics)
        subscriber.interval_s = join.interval_s
        subscriber.tail_filter, subscriber.tail_terms = join.tail_filter, join.tail_terms
        hub.add(subscriber)
        if "tail" in join.topics:
            on_tail_change()
        subscriber.offer(_json.encode(Subscribed(sorted(join.topics))) + b"\n")  # what SUBSCRIBE answers first
        return StreamingResponse(sink.stream(hub, subscriber), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    return app
