"""The server object: owns start-up, the periodic tick, signals, reload and the ordered shutdown.

Start: restore state -> pool -> pipeline -> listeners -> control -> READY=1. SIGHUP: re-read
the config, apply what can change live, keep the old config if the new one is invalid.
Shutdown (SIGTERM/SIGINT): STOPPING=1 -> stop accepting -> let open senders finish (grace) ->
drain batches -> snapshot -> flush the rejects file and archive -> exit 0.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import ssl
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import msgspec
import structlog

from server.daemon import sdnotify
from server.persist.archive import Archive
from server.publish.commands import Commands
from server.daemon.config import Config, ConfigError, load_config, split_address
from server.publish.control import ControlConnection
from server.detect.engine import Engine
from server.detect.feed import Feed
from server.detect.driver import Driver
from server.publish.http import MetricsHttp
from server.ingest.listeners import Connections, TcpIngest, UdpIngest
from server.daemon.logsetup import configure_logging
from server.publish.metrics import MetricFigures, render_metrics
from server.ingest.pipeline import Pipeline
from server.primes.jobs import JobManager
from server.publish.pubsub import Hub
from server.persist.rejects import RejectsFile
from server.pool.scheduler import PoolScheduler
from server.ratelog import RateLimiter
from server.persist.state import StateStore
from server.stats.windows import Stats
from server.pool.worker import BatchResult, WorkerOptions, warm_up

log = structlog.get_logger()
_json = msgspec.json.Encoder()


class Server:
    def __init__(self, config: Config, config_path: str | None = None, pinned: set[str] | None = None) -> None:
        self.config = config
        self.config_path = config_path
        # Listeners whose address came from the command line or from systemd: SIGHUP leaves them.
        self.pinned: set[str] = set(pinned or ())
        self.clock = time.time
        self.started_mono = time.monotonic()
        self.state = StateStore(config.state)
        restored = self.state.load(config.stats, config.detect)
        self.stats = restored.stats if restored else Stats(config.stats, self.clock())
        engine = restored.engine if restored else Engine(config.detect)
        self.driver = Driver(engine, config.pipeline.event_lateness_s, config.stats.max_future_s)
        self.windows = ["all", *config.stats.windows]
        self.connections = Connections(
            config.ingest.max_connections, config.ingest.idle_timeout_s, config.ingest.max_message_bytes,
            config.ingest.reject_sample_bytes,
            RateLimiter(config.log.connection_events_per_interval, config.log.rate_interval_s),
        )
        self.hub = Hub(config.control.subscriber_queue, config.control.stalled_subscriber_s, time.monotonic)
        self.control_connections: set[ControlConnection] = set()
        self.addresses: dict[str, str] = {}
        self._servers: dict[str, list[asyncio.AbstractServer]] = {}
        self._udp: list[asyncio.DatagramTransport] = []
        self._stopping = asyncio.Event()
        self._tick_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._last_status = 0.0
        self._last_snapshot = time.monotonic()
        workers = config.pipeline.workers or os.cpu_count() or 1
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
        )
        self.scheduler = PoolScheduler(self.executor, slots=workers)
        self.jobs = JobManager(self.scheduler, config.primes, lambda m: self.hub.publish("jobs", m))
        self.commands = Commands(
            config, self.stats, self.jobs, self.clock, self.stats_report, self.recent_events, self.metrics_text
        )
        self.rejects = RejectsFile(config.rejects.path, config.rejects.max_bytes) if config.rejects.path else None
        self.pipeline = Pipeline(
            config.pipeline,
            WorkerOptions(parse=config.parse, detect=config.detect, listener_parse=config.listener_parse()),
            self.scheduler,
            self.stats,
            self.rejects,
            pause=self.connections.pause,
            resume=self.connections.resume,
            archive=Archive(config.archive) if config.archive.enabled else None,
            on_tail=self.hub.publish_tail,
            on_result=self._batch_done,
            clock=self.clock,
            log_limiter=RateLimiter(config.log.rejected_per_interval, config.log.rate_interval_s),
        )
        self.hub.on_leave = lambda sub: self.tail_changed()

    # -- start -------------------------------------------------------------------------------

    async def start(self, inherited: list[tuple[str, socket.socket]] | None = None) -> None:
        loop = asyncio.get_running_loop()
        # Start every worker now, so the first batch does not pay for process start-up.
        await asyncio.gather(*(loop.run_in_executor(self.executor, warm_up) for _ in range(self.workers)))
        if self.rejects is not None:
            self.rejects.start()
        if self.pipeline.archive is not None:
            await self.pipeline.archive.open()
        await self._open_listeners(self.config, inherited or [])
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        self._tick_task = loop.create_task(self._tick())
        log.info("listening", **self.addresses, workers=self.workers)
        sdnotify.notify(sdnotify.READY, sdnotify.status(self._status_line()))

    async def _open_listeners(self, config: Config, inherited: list[tuple[str, socket.socket]]) -> None:
        ingest = config.ingest
        self.pinned |= {_ROLE_LISTENER.get(role, role) for role, _ in inherited}
        for role, sock in inherited:  # socket activation: systemd bound these for us
            if role == "ingest-udp":
                await self._start_udp(None, sock)
            elif role == "control":
                await self._start_control(None, sock)
            elif role == "http":
                await self._start_http(None, sock)
            else:
                context = self._tls_context(config) if role == "ingest-tls" else None
                await self._start_tcp("tls" if context else "tcp", None, sock, context)
        roles = {role for role, _ in inherited}
        if ingest.tcp and "ingest-tcp" not in roles:
            await self._start_tcp("tcp", ingest.tcp, None)
        if ingest.udp and "ingest-udp" not in roles:
            await self._start_udp(ingest.udp, None)
        if ingest.tls.listen and "ingest-tls" not in roles:
            await self._start_tcp("tls", ingest.tls.listen, None, self._tls_context(config))
        if "control" not in roles:
            await self._start_control(config.control.listen, None)
        if config.http.listen and "http" not in roles:
            await self._start_http(config.http.listen, None)

    @staticmethod
    def _tls_context(config: Config) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.ingest.tls.cert, config.ingest.tls.key)
        return context

    async def _serve_stream(self, name: str, factory: Any, address: str | None, sock: socket.socket | None,
                            context: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        if sock is not None:
            server = await loop.create_server(factory, sock=sock, ssl=context, backlog=1024)
        else:
            assert address is not None
            host, port = split_address(address)
            server = await loop.create_server(factory, host, port, ssl=context, backlog=1024, reuse_address=True)
        self._servers.setdefault(name, []).append(server)
        self.addresses[name] = _bound(server.sockets[0])

    async def _start_tcp(self, name: str, address: str | None, sock: socket.socket | None,
                         context: ssl.SSLContext | None = None) -> None:
        await self._serve_stream(
            name, lambda: TcpIngest(self.connections, self.pipeline, name), address, sock, context
        )

    async def _start_udp(self, address: str | None, sock: socket.socket | None) -> None:
        loop = asyncio.get_running_loop()
        if sock is None:
            assert address is not None
            host, port = split_address(address)
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.ingest.udp_receive_buffer)
        except OSError:
            pass
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpIngest(self.pipeline, self.config.ingest.max_message_bytes,
                             self.config.ingest.reject_sample_bytes), sock=sock
        )
        self._udp.append(transport)
        self.addresses["udp"] = _bound(sock)

    async def _start_control(self, address: str | None, sock: socket.socket | None) -> None:
        def factory() -> ControlConnection:
            return ControlConnection(
                self.commands, self.hub, self.control_connections, self.config.control.max_connections,
                self.tail_changed,
            )

        await self._serve_stream("control", factory, address, sock)

    async def _start_http(self, address: str | None, sock: socket.socket | None) -> None:
        await self._serve_stream("http", lambda: MetricsHttp(self.metrics_text, self.config.http.max_head_bytes), address, sock)

    # -- running -----------------------------------------------------------------------------

    def _batch_done(self, seq: int, result: BatchResult | None, now: float) -> None:
        feed = Feed.from_bytes(result.feed) if result is not None else None
        self._publish_events(self.driver.add(feed, time.monotonic()))

    def _publish_events(self, events: list[Any]) -> None:
        for event in events:
            log.info("anomaly", **msgspec.to_builtins(event))
            self.hub.publish("anomalies", event)

    async def _tick(self) -> None:
        watchdog = sdnotify.watchdog_interval_s()
        last_watchdog = 0.0
        while not self._stopping.is_set():
            await asyncio.sleep(self.config.daemon.tick_interval_s)
            mono = time.monotonic()
            self.connections.sweep_idle(mono)
            self.hub.sweep_stalled(mono)
            self._publish_events(self.driver.tick(mono))
            due = self.hub.due_for_stats(mono)
            if due:
                line = _json.encode({"type": "stats", **self.stats_report("all")}) + b"\n"
                for sub in due:
                    sub.offer(line)
            if watchdog is not None and mono - last_watchdog >= watchdog:
                last_watchdog = mono
                sdnotify.notify(sdnotify.WATCHDOG)
            if mono - self._last_status >= self.config.daemon.status_interval_s:
                self._last_status = mono
                sdnotify.notify(sdnotify.status(self._status_line()))
                self.pipeline.reject_log.flush()
                self.connections.log.flush()
                if self.pipeline.archive is not None:
                    await self.pipeline.archive.tick()
            if self.state.enabled and mono - self._last_snapshot >= self.config.state.snapshot_interval_s:
                self._last_snapshot = mono
                await self.snapshot()

    def _status_line(self) -> str:
        report = self.stats.report("1m", self.clock()) if "1m" in self.windows else {}
        return (
            f"{len(self.connections.open)} connections, "
            f"{report.get('lines_per_s') or 0:.0f} lines/s (1m), {self.pipeline.in_flight} batches in flight"
        )

    async def snapshot(self, clean: bool = False) -> None:
        await self.state.save(self.stats, self.driver.engine, self.clock(), clean)

    def stats_report(self, window: str) -> dict[str, Any]:
        report = self.stats.report(window, self.clock())
        report["connections"] = {
            "open": len(self.connections.open),
            "total": self.connections.total,
            "refused": self.connections.refused,
            "idle_closed": self.connections.idle_closed,
        }
        report["pipeline"] = {
            "in_flight": self.pipeline.in_flight,
            "queued_batches": self.pipeline.queued_batches,
            "buffered_bytes": self.pipeline.buffered_bytes,
            "paused": self.pipeline.paused,
            "pauses": self.pipeline.pauses,
            "batches": self.pipeline.batches,
        }
        report["subscribers"] = {
            "open": len(self.hub.subscribers),
            "dropped_messages": self.hub.dropped,
            "disconnected_stalled": self.hub.disconnected_stalled,
            "tail_skipped": self.pipeline.tail_skipped,
        }
        report["detect"] = self.driver.engine.stats()
        report["uptime_s"] = round(time.monotonic() - self.started_mono, 3)
        if self.rejects is not None:
            report["rejects_file"] = {"written": self.rejects.written, "dropped": self.rejects.dropped}
        return report

    def recent_events(self, n: int) -> list[Any]:
        return list(self.driver.engine.recent(n))

    def metrics_figures(self) -> MetricFigures:
        totals = self.stats.report("all", self.clock())
        job_states: dict[str, int] = {}
        for job in self.jobs.jobs():
            job_states[job["state"]] = job_states.get(job["state"], 0) + 1
        return MetricFigures(
            lines_received=totals["received"],
            lines_parsed=totals["parsed"],
            lines_rejected=dict(totals["rejected"]),
            lines_by_format=dict(totals["by_format"]),
            bytes_received=totals["bytes"],
            connections_open=len(self.connections.open),
            connections_total=self.connections.total,
            batches_in_flight=self.pipeline.in_flight + self.pipeline.queued_batches,
            buffered_bytes=self.pipeline.buffered_bytes,
            batch_seconds_sum=self.pipeline.batch_seconds_sum,
            batch_seconds_count=self.pipeline.batches,
            pool_workers=self.workers,
            pool_busy_workers=self.scheduler.busy,
            subscribers=len(self.hub.subscribers),
            subscriber_messages_dropped=self.hub.dropped,
            jobs=job_states,
            uptime_s=round(time.monotonic() - self.started_mono, 3),
        )

    def metrics_text(self) -> str:
        return render_metrics(self.metrics_figures())

    def tail_changed(self) -> None:
        """Tell the workers which records the current `tail` subscribers want."""
        terms = self.hub.tail_terms()
        if terms != self.pipeline.options.tail_filters:
            self.pipeline.options = msgspec.structs.replace(self.pipeline.options, tail_filters=terms)

    # -- reload ------------------------------------------------------------------------------

    def _reload_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._background.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._background.discard)

    async def reload(self) -> None:
        """SIGHUP: apply a new config without dropping connections or state."""
        sdnotify.notify(*sdnotify.reloading_lines())
        try:
            new = load_config(self.config_path) if self.config_path else self.config
        except ConfigError as exc:
            log.error("reload_rejected", reason=str(exc))
            sdnotify.notify(sdnotify.READY, sdnotify.status("reload rejected: " + str(exc)[:200]))
            return
        old = self.config
        new = msgspec.structs.replace(
            new,
            ingest=msgspec.structs.replace(
                new.ingest,
                tcp=old.ingest.tcp if "tcp" in self.pinned else new.ingest.tcp,
                udp=old.ingest.udp if "udp" in self.pinned else new.ingest.udp,
            ),
            control=msgspec.structs.replace(
                new.control, listen=old.control.listen if "control" in self.pinned else new.control.listen
            ),
            stats=old.stats,  # windows and sketch sizes shape the stored state: restart to change
        )
        self.config = new
        configure_logging(new.log)
        self.connections.max_connections = new.ingest.max_connections
        self.connections.idle_timeout_s = new.ingest.idle_timeout_s
        self.connections.max_message_bytes = new.ingest.max_message_bytes
        self.pipeline.reconfigure(new.pipeline)
        self.pipeline.options = msgspec.structs.replace(
            self.pipeline.options, parse=new.parse, detect=new.detect, listener_parse=new.listener_parse()
        )
        self.driver.engine.reconfigure(new.detect)
        self.driver.lateness_s = new.pipeline.event_lateness_s
        self.hub.queue_size = new.control.subscriber_queue
        self.hub.stalled_s = new.control.stalled_subscriber_s
        self.jobs.config = new.primes
        self.commands.reconfigure(new)
        await self._reload_listeners(old, new)
        log.info("reloaded", config=self.config_path)
        sdnotify.notify(sdnotify.READY, sdnotify.status(self._status_line()))

    async def _reload_listeners(self, old: Config, new: Config) -> None:
        """Open listeners the new config adds or moves and close the ones it drops; connections
        already open stay open (closing a listening socket does not touch them)."""
        for name, before, after in (
            ("tcp", old.ingest.tcp, new.ingest.tcp),
            ("udp", old.ingest.udp, new.ingest.udp),
            ("tls", old.ingest.tls.listen, new.ingest.tls.listen),
            ("control", old.control.listen, new.control.listen),
            ("http", old.http.listen, new.http.listen),
        ):
            if before == after or name in self.pinned:
                continue
            if name == "udp":
                for transport in self._udp:
                    transport.close()
                self._udp.clear()
            for server in self._servers.pop(name, []):
                server.close()
            self.addresses.pop(name, None)
            if not after:
                continue
            try:
                if name == "tcp":
                    await self._start_tcp("tcp", after, None)
                elif name == "udp":
                    await self._start_udp(after, None)
                elif name == "tls":
                    await self._start_tcp("tls", after, None, self._tls_context(new))
                elif name == "control":
                    await self._start_control(after, None)
                else:
                    await self._start_http(after, None)
            except (OSError, ssl.SSLError) as exc:
                log.error("listener_failed", listener=name, address=after, error=str(exc))
        log.info("listening", **self.addresses, workers=self.workers)

    # -- stop --------------------------------------------------------------------------------

    def request_stop(self, reason: str = "") -> None:
        if not self._stopping.is_set():
            log.info("stopping", reason=reason)
            sdnotify.notify(sdnotify.STOPPING)
            self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        for servers in self._servers.values():
            for server in servers:
                server.close()  # stop accepting; open connections stay
        await self.jobs.close()
        await self.connections.wait_closed(self.config.pipeline.shutdown_grace_s)
        for transport in self._udp:
            transport.close()
        await self.pipeline.drain()
        if self._tick_task is not None:
            self._tick_task.cancel()
        self._publish_events(self.driver.tick(time.monotonic()))
        if self.state.enabled:
            await self.snapshot(clean=True)
        if self.rejects is not None:
            await self.rejects.close()
        if self.pipeline.archive is not None:
            await self.pipeline.archive.close()
        for conn in list(self.control_connections):
            if conn.transport is not None:
                conn.transport.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        totals = self.stats.report("all", self.clock())
        rejected = sum(totals["rejected"].values())
        log.info(
            "stopped",
            received=totals["received"],
            parsed=totals["parsed"],
            rejected=rejected,
            balanced=totals["received"] == totals["parsed"] + rejected,
        )


_ROLE_LISTENER = {"ingest-tcp": "tcp", "ingest-udp": "udp", "ingest-tls": "tls"}


def _bound(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(config: Config, config_path: str | None = None, pinned: set[str] | None = None) -> int:
    from server.daemon.activation import inherited_listeners

    server = Server(config, config_path, pinned)
    await server.start(inherited_listeners())
    await server.wait_stopped()
    await server.stop()
    return 0
