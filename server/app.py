"""The server object: owns start-up, the periodic tick, signals and the ordered shutdown.

Start: pool -> pipeline -> listeners -> control -> READY. Shutdown (SIGTERM/SIGINT): stop
accepting -> let open senders finish (grace) -> drain batches -> flush the rejects file -> exit 0.
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

from server import sdnotify
from server.commands import Commands
from server.config import Config, split_address
from server.control import ControlConnection
from server.listeners import Connections, TcpIngest, UdpIngest
from server.pipeline import Pipeline
from server.pubsub import Hub
from server.rejects import RejectsFile
from server.scheduler import PoolScheduler
from server.windows import Stats
from server.worker import WorkerOptions, warm_up

log = structlog.get_logger()
_json = msgspec.json.Encoder()


class Server:
    def __init__(self, config: Config, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = time.time
        self.started_at = self.clock()
        self.started_mono = time.monotonic()
        self.windows = ["all", *config.stats.windows]
        self.stats = Stats(config.stats, self.started_at)
        self.connections = Connections(
            config.ingest.max_connections, config.ingest.idle_timeout_s, config.ingest.max_message_bytes
        )
        self.hub = Hub(config.control.subscriber_queue, config.control.stalled_subscriber_s, time.monotonic)
        self.control_connections: set[ControlConnection] = set()
        self.addresses: dict[str, str] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._stopping = asyncio.Event()
        self._tick_task: asyncio.Task[None] | None = None
        workers = config.pipeline.workers or os.cpu_count() or 1
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
        )
        self.scheduler = PoolScheduler(self.executor, slots=workers)
        self.rejects = RejectsFile(config.rejects.path, config.rejects.max_bytes) if config.rejects.path else None
        self.pipeline = Pipeline(
            config.pipeline,
            WorkerOptions(parse=config.parse),
            self.scheduler,
            self.stats,
            self.rejects,
            pause=self.connections.pause,
            resume=self.connections.resume,
            clock=self.clock,
        )
        self.connections.pipeline = self.pipeline
        self.pipeline.on_tail = self.hub.publish_tail
        self.hub.on_leave = lambda sub: self.tail_changed()

    # -- start -------------------------------------------------------------------------------

    async def start(self, inherited: list[tuple[str, socket.socket]] | None = None) -> None:
        loop = asyncio.get_running_loop()
        # Start every worker now, so the first batch does not pay for process start-up.
        await asyncio.gather(*(loop.run_in_executor(self.executor, warm_up) for _ in range(self.workers)))
        if self.rejects is not None:
            self.rejects.start()
        ingest = self.config.ingest
        by_name = dict(inherited or [])
        await self._start_tcp("tcp", ingest.tcp, by_name.get("ingest-tcp"))
        await self._start_udp(ingest.udp, by_name.get("ingest-udp"))
        if ingest.tls.listen:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(ingest.tls.cert, ingest.tls.key)
            await self._start_tcp("tls", ingest.tls.listen, by_name.get("ingest-tls"), context)
        await self._start_control(self.config.control.listen, by_name.get("control"))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        self._tick_task = loop.create_task(self._tick())
        log.info("listening", **self.addresses, workers=self.workers)
        sdnotify.notify("READY=1", f"STATUS=listening {' '.join(f'{k}={v}' for k, v in self.addresses.items())}")

    async def _start_tcp(
        self, name: str, address: str, sock: socket.socket | None, context: ssl.SSLContext | None = None
    ) -> None:
        if not address and sock is None:
            return
        loop = asyncio.get_running_loop()

        def factory() -> TcpIngest:
            return TcpIngest(self.connections, self.pipeline)

        if sock is not None:
            server = await loop.create_server(factory, sock=sock, ssl=context, backlog=1024)
        else:
            host, port = split_address(address)
            server = await loop.create_server(factory, host, port, ssl=context, backlog=1024, reuse_address=True)
        self._servers.append(server)
        self.addresses[name] = _bound(server.sockets[0])

    async def _start_udp(self, address: str, sock: socket.socket | None) -> None:
        if not address and sock is None:
            return
        loop = asyncio.get_running_loop()
        if sock is None:
            host, port = split_address(address)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.ingest.udp_receive_buffer)
        except OSError:
            pass
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpIngest(self.pipeline, self.config.ingest.max_message_bytes), sock=sock
        )
        self._udp.append(transport)
        self.addresses["udp"] = _bound(sock)

    async def _start_control(self, address: str, sock: socket.socket | None) -> None:
        loop = asyncio.get_running_loop()
        commands = Commands(self)
        control = self.config.control

        def factory() -> ControlConnection:
            return ControlConnection(
                commands, self.hub, control.subscriber_queue, self.control_connections, control.max_connections
            )

        if sock is not None:
            server = await loop.create_server(factory, sock=sock)
        else:
            host, port = split_address(address)
            server = await loop.create_server(factory, host, port, reuse_address=True)
        self._servers.append(server)
        self.addresses["control"] = _bound(server.sockets[0])

    # -- running -----------------------------------------------------------------------------

    async def _tick(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(0.1)
            now = self.clock()
            mono = time.monotonic()
            self.connections.sweep_idle(mono)
            self.hub.sweep_stalled(mono)
            due = self.hub.due_for_stats(mono)
            if due:
                report = {"type": "stats", **self.stats_report("all")}
                line = _json.encode(report) + b"\n"
                for sub in due:
                    sub.offer(line)

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
        report["uptime_s"] = round(time.monotonic() - self.started_mono, 3)
        if self.rejects is not None:
            report["rejects_file"] = {"written": self.rejects.written, "dropped": self.rejects.dropped}
        return report

    def recent_events(self, n: int) -> list[dict[str, Any]]:
        return []

    def metrics_text(self) -> str:
        return ""

    def tail_changed(self) -> None:
        """Tell the workers which records the current `tail` subscribers want."""
        terms = self.hub.tail_terms()
        if terms != self.pipeline.options.tail_filters:
            self.pipeline.options = msgspec.structs.replace(self.pipeline.options, tail_filters=terms)

    # -- stop --------------------------------------------------------------------------------

    def request_stop(self, reason: str = "") -> None:
        if not self._stopping.is_set():
            log.info("stopping", reason=reason)
            sdnotify.notify("STOPPING=1")
            self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()  # stop accepting; open connections stay
        await self.connections.wait_closed(self.config.pipeline.shutdown_grace_s)
        for transport in self._udp:
            transport.close()
        await self.pipeline.drain()
        if self.rejects is not None:
            await self.rejects.close()
        if self._tick_task is not None:
            self._tick_task.cancel()
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


def _bound(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(config: Config, config_path: str | None = None) -> int:
    from server.activation import inherited_sockets

    server = Server(config, config_path)
    await server.start(inherited_sockets())
    await server.wait_stopped()
    await server.stop()
    return 0
