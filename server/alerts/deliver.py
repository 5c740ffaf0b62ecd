"""The alert routes' I/O: one delivery task per route that empties its outbox over HTTP
(aiohttp) or through a command, with a timeout per try and backed-off retries, and writes
dropped and failed notifications to the route's dead-letter file. Events only enter queues here,
so a route that is down never slows ingestion.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path
from typing import Any, Callable

import msgspec
import structlog

from logtallyd.alerts.config import AlertRoute
from logtallyd.alerts.notice import Notification, alertmanager_body, slack_body, webhook_body
from logtallyd.alerts.route import FINAL, Failure, RouteCore, RouteFigures, backoff_s
from logtallyd.detect.events import Event
from logtallyd.ratelog import RateLimitedLog, RateLimiter

__all__ = ["AlertService", "body_of", "load_secret_headers"]

log = structlog.get_logger()
_json = msgspec.json.Encoder()


def body_of(route: AlertRoute, n: Notification) -> bytes:
    if route.kind == "slack":
        return _json.encode(slack_body(n))
    if route.kind == "alertmanager":
        return _json.encode(alertmanager_body(n))
    return _json.encode(webhook_body(n))


def load_secret_headers(route: AlertRoute, environ: dict[str, str] | os._Environ[str] = os.environ
                        ) -> tuple[dict[str, str], list[str]]:
    """The route's secret headers, and the names (never values) of the sources that were missing."""
    headers: dict[str, str] = {}
    missing: list[str] = []
    token = None
    if route.token_env:
        token = environ.get(route.token_env)
        if not token:
            missing.append(f"${route.token_env}")
    elif route.token_file:
        try:
            token = Path(route.token_file).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError):
            missing.append(route.token_file)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for name, variable in route.header_env.items():
        value = environ.get(variable)
        if value:
            headers[name] = value
        else:
            missing.append(f"${variable}")
    return headers, missing


def target_of(route: AlertRoute) -> str:
    """What `ALERTS` shows as the destination: never a secret."""
    if route.kind == "exec":
        return route.command[0]
    if route.url_env:
        return f"${route.url_env}"
    return route.url.split("?", 1)[0]


class RouteWorker:
    """Delivers one route's notifications, one at a time in queue order."""

    def __init__(self, core: RouteCore, session: Any, environ: dict[str, str] | os._Environ[str],
                 rand: Callable[[], float], try_log: RateLimitedLog) -> None:
        self.core = core
        self.session = session
        self.rand = rand
        self.try_log = try_log
        self.wake = asyncio.Event()
        self.configure(core.route, environ)
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.dead_wake = asyncio.Event()
        self.backing_off = False  # waiting to retry: a stop does not wait for it
        self.current: Notification | None = None

    def configure(self, route: AlertRoute, environ: dict[str, str] | os._Environ[str]) -> None:
        self.core.reconfigure(route)
        self.headers, missing = load_secret_headers(route, environ)
        self.url = (route.url or environ.get(route.url_env, "")) if route.kind != "exec" else ""
        if route.kind == "alertmanager" and self.url:
            self.url = self.url.rstrip("/") + "/api/v2/alerts"
        for source in missing:
            log.error("alert_secret_missing", route=route.name, source=source)
        if route.kind != "exec" and not self.url:
            log.error("alert_secret_missing", route=route.name, source=f"${route.url_env}")

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        self.writer = asyncio.get_running_loop().create_task(self._write_dead())

    def poke(self) -> None:
        if self.core.outbox:
            self.wake.set()
        if self.core.dead:
            self.dead_wake.set()

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while (n := self.core.take()) is not None:
                self.current = n
                try:
                    delivered = await self._deliver(n)
                except Exception as exc:  # a bug here must not stop the route for good
                    log.error("alert_delivery_bug", route=self.core.route.name, error=type(exc).__name__)
                    delivered = False
                self.current = None
                self.core.done(n, delivered)
                self.poke()

    async def _deliver(self, n: Notification) -> bool:
        route = self.core.route
        body = body_of(route, n)
        for attempt in range(route.max_retries + 1):
            failure = await self._try(route, body)
            if failure is None:
                self.core.tried(None, retry=False)
                return True
            retry = failure not in FINAL and attempt < route.max_retries
            self.core.tried(failure, retry)
            # Names and reasons only: an exception's text may hold a URL that came from a secret.
            self.try_log.log("warning", "alert_try_failed", key=route.name, route=route.name, reason=failure,
                             attempt=attempt + 1, status=n.status, group_key=n.group_key, retry=retry)
            if not retry:
                break
            self.backing_off = True
            try:
                await asyncio.sleep(backoff_s(attempt, route.backoff_initial_s, route.backoff_max_s, self.rand()))
            finally:
                self.backing_off = False
        return False

    async def _try(self, route: AlertRoute, body: bytes) -> Failure | None:
        if route.kind == "exec":
            return await run_command(route.command, body, route.timeout_s)
        return await post(self.session, self.url, body, self.headers, route.timeout_s)

    async def _write_dead(self) -> None:
        while True:
            await self.dead_wake.wait()
            self.dead_wake.clear()
            batch = list(self.core.dead)
            self.core.dead.clear()
            route = self.core.route
            if not route.dead_letter:
                continue
            lines = [_json.encode({"reason": why, "at": time.time(), **webhook_body(n)}) + b"\n"
                     for why, n in batch]
            written = await asyncio.to_thread(_append, Path(route.dead_letter), lines, route.dead_letter_max_bytes)
            self.core.counts["dead_letters"] += written
            self.core.counts["dead_letters_skipped"] += len(lines) - written

    async def close(self, grace_s: float) -> None:
        """Give queued notifications (resolutions sent at stop, say) up to `grace_s` unless the route
        is already waiting out a failure, then stop; what is left goes to the dead-letter file."""
        deadline = time.monotonic() + grace_s
        while ((self.core.outbox or self.core.in_flight) and not self.backing_off
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        for task in (self.task, self.writer):
            if task is not None:
                task.cancel()
        left = ([self.current] if self.current is not None else []) + list(self.core.outbox)
        route = self.core.route
        if left:
            log.warning("alerts_unsent_at_stop", route=route.name, notifications=len(left))
        if route.dead_letter:
            lines = [_json.encode({"reason": why, "at": time.time(), **webhook_body(n)}) + b"\n"
                     for why, n in [*self.core.dead, *(("unsent_at_stop", n) for n in left)]]
            self.core.dead.clear()
            _append(Path(route.dead_letter), lines, route.dead_letter_max_bytes)


def _append(path: Path, lines: list[bytes], max_bytes: int) -> int:
    """Append whole lines while the file stays within `max_bytes`; how many were written."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    keep: list[bytes] = []
    for line in lines:
        if size + len(line) > max_bytes:
            break
        keep.append(line)
        size += len(line)
    if keep:
        try:
            with path.open("ab") as f:
                f.write(b"".join(keep))
        except OSError as exc:
            log.error("alert_dead_letter_failed", path=str(path), error=exc.strerror)
            return 0
    return len(keep)


async def post(session: Any, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Failure | None:
    import aiohttp

    if not url:
        return "connect"
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json", **headers},
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            await response.read()
            if 200 <= response.status < 300:
                return None
            if response.status in (408, 429) or response.status >= 500:
                return "http_status"
            return "rejected"
    except asyncio.TimeoutError:
        return "timeout"
    except (aiohttp.ClientError, OSError):
        return "connect"


async def run_command(argv: list[str], body: bytes, timeout_s: float) -> Failure | None:
    """Run `argv` (no shell) with `body` on stdin; killed, and a "timeout", past `timeout_s`."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return "spawn"
    try:
        await asyncio.wait_for(proc.communicate(body), timeout_s)
    except asyncio.TimeoutError:
        # Its own session (start_new_session): the whole group goes, children the command left too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        return "timeout"
    except (BrokenPipeError, ConnectionResetError):
        await proc.wait()  # it did not read its stdin: its exit status says whether that matters
    return None if proc.returncode == 0 else "exit_status"


class AlertService:
    """Every `[[alerts]]` route: events in (`publish`, `tick`), figures out (`figures`, `active`)."""

    def __init__(self, routes: list[AlertRoute], environ: dict[str, str] | os._Environ[str] = os.environ,
                 clock: Callable[[], float] = time.time, rand: Callable[[], float] = random.random,
                 try_log: RateLimitedLog | None = None) -> None:
        # A route that is down fails every try: its `alert_try_failed` lines are rate-limited per route.
        self.try_log = try_log if try_log is not None else RateLimitedLog(RateLimiter())
        self.environ = environ
        self.clock = clock
        self.rand = rand
        self.session: Any = None
        self.workers: dict[str, RouteWorker] = {}
        self._started = False
        self._pending_routes = routes

    def start(self) -> None:
        if self._pending_routes:
            self._open_session()
        self._started = True
        self.reconfigure(self._pending_routes)

    def _open_session(self) -> None:
        if self.session is None:
            import aiohttp  # only daemons with routes pay for importing it

            self.session = aiohttp.ClientSession()

    def reconfigure(self, routes: list[AlertRoute]) -> None:
        """SIGHUP: routes keep their firing alerts and counts by name; removed routes stop."""
        if not self._started:
            self._pending_routes = routes
            return
        if routes:
            self._open_session()
        kept: dict[str, RouteWorker] = {}
        for route in routes:
            worker = self.workers.pop(route.name, None)
            if worker is None:
                worker = RouteWorker(RouteCore(route), self.session, self.environ, self.rand, self.try_log)
                worker.start()
            else:
                worker.configure(route, self.environ)
            kept[route.name] = worker
        for gone in self.workers.values():
            for task in (gone.task, gone.writer):
                if task is not None:
                    task.cancel()
        self.workers = kept

    def publish(self, events: list[Event]) -> None:
        if not self.workers or not events:
            return
        now = self.clock()
        for worker in self.workers.values():
            for event in events:
                worker.core.offer(event, now)
            worker.poke()

    def tick(self) -> None:
        now = self.clock()
        for worker in self.workers.values():
            worker.core.tick(now)
            worker.poke()

    def figures(self) -> dict[str, RouteFigures]:
        return {name: w.core.figures(target_of(w.core.route)) for name, w in self.workers.items()}

    def active(self) -> list[dict[str, Any]]:
        """Alerts firing now, on every route, oldest first."""
        out = []
        for name, w in self.workers.items():
            for alert in w.core.active.values():
                out.append({"route": name, "group_key": alert.group_key, "labels": alert.labels,
                            "starts_at": alert.starts_at, "last_event_at": alert.last_event_at,
                            "events": alert.events})
        return sorted(out, key=lambda a: (a["starts_at"], a["route"], a["group_key"]))

    async def close(self) -> None:
        await asyncio.gather(*(w.close(w.core.route.timeout_s) for w in self.workers.values()))
        if self.session is not None:
            await self.session.close()
