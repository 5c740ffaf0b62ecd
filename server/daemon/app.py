"""The server's lifecycle: start-up, the periodic jobs, signals, reload and the ordered shutdown.

The parts come built (`logtallyd.daemon.assembly`) and the listeners from one table
(`logtallyd.daemon.endpoints`); this module only decides when each step happens.
"""
from __future__ import annotations

import asyncio
import signal
import socket
import time
from typing import Awaitable, Callable

import msgspec
import structlog

from logtallyd.daemon import sdnotify
from logtallyd.daemon.assembly import Parts, build
from logtallyd.daemon.config import Config, ConfigError, is_loopback, load_config, split_address
from logtallyd.daemon.endpoints import Endpoints, openers, raise_descriptor_limit
from logtallyd.daemon.logsetup import configure_logging
from logtallyd.daemon.tokenfile import load_token, read_token
from logtallyd.ingest.pipeline import Pipeline
from logtallyd.persist.archive import Archive, ArchivePosition
from logtallyd.persist.recovery import plan_directory, read_frames
from logtallyd.pool.worker import quiet_process_gc, warm_up
from logtallyd.publish.sse import end_streams
from logtallyd.ratelog import RateLimitedLog, RateLimiter

log = structlog.get_logger()
_json = msgspec.json.Encoder()


class Server:
    def __init__(self, parts: Parts, config_path: str | None = None, pinned: set[str] | None = None,
                 overrides: Callable[[Config], Config] = lambda config: config) -> None:
        self.parts = parts
        self.config_path = config_path
        # The command line's --nats/--node/--nats-ingest, applied to the file again on SIGHUP.
        self.overrides = overrides
        # Listeners whose address came from the command line or from systemd: SIGHUP leaves them.
        self.endpoints = Endpoints(openers(parts), pinned)
        self._stopping = asyncio.Event()
        self._tick_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._snapshot_lock = asyncio.Lock()
        self._job_log = RateLimitedLog(RateLimiter(1, 60.0))
        self.job_failures = parts.job_failures  # shown in STATS and METRICS

    @property
    def config(self) -> Config:
        return self.parts.config

    # -- start -------------------------------------------------------------------------------

    async def start(self, inherited: list[tuple[str, socket.socket]] | None = None) -> None:
        parts, loop = self.parts, asyncio.get_running_loop()
        # Before the archive replay: events it finds are routed too (at least once, not at most).
        parts.alerts.start()
        # Every worker starts now, so the first batch does not pay for process start-up (~1 s of
        # imports each). Only an archive replay needs them before listening; otherwise they warm
        # up behind the open listeners: a batch sent meanwhile waits in the executor's queue
        # (counted in flight, so backpressure applies), it is never dropped.
        replay = parts.pipeline.archive is not None and parts.restored_archive is not None
        if replay:
            await self._warm_up()
        if parts.rejects is not None:
            parts.rejects.start()
        archive = parts.pipeline.archive
        if archive is not None:
            await archive.open(housekeep=False)
            parts.pipeline.archived = archive.position
            # Lines archived after the snapshot were never counted: count them before listening.
            if parts.restored_archive is not None:
                outbox = parts.cluster.outbox if parts.cluster is not None else None
                if outbox is not None and not outbox.durable:
                    # The fleet has these lines: the previous process sent them live. (Sent
                    # durably, it sent none a snapshot did not count: they go out once, now.)
                    outbox.replaying = True
                try:
                    archive.replayed_lines = await replay_archive(parts.pipeline, archive, parts.restored_archive)
                finally:
                    if outbox is not None:
                        outbox.replaying = False
            archive.schedule_housekeeping()  # after the replay: it may compress or delete segments
            if parts.state.enabled:
                await self.snapshot()  # from now on a kill -9 replays from here, not from the start
        limit, needed = raise_descriptor_limit(self.config)
        if limit < needed:
            log.warning("fd_limit_low", limit=limit, needed=needed,
                        hint="raise LimitNOFILE or lower ingest/control/http max_connections")
        parts.begin_counting()  # the replayed lines were the previous process's to count
        await self.endpoints.open_all(self.config, inherited or [])
        if parts.nats_source is not None:
            parts.nats_source.start()  # after the archive replay: it resumes after the snapshot's sequence
        if parts.work_queue is not None:
            parts.work_queue.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        self._tick_task = loop.create_task(self._tick())
        if parts.cluster is not None:
            parts.cluster.start()  # connects in its own task: the local view serves meanwhile
        parts.ready = True
        log.info("listening", **self.endpoints.addresses, workers=parts.workers)
        sdnotify.notify(sdnotify.READY, sdnotify.status(parts.status_line()))
        if not replay:
            task = loop.create_task(self._warm_up())
            self._background.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._background.discard)

    async def _warm_up(self) -> None:
        parts, loop = self.parts, asyncio.get_running_loop()
        started = time.monotonic()
        try:
            await asyncio.gather(*(loop.run_in_executor(parts.executor, warm_up) for _ in range(parts.workers)))
        except RuntimeError:  # stopped before the pool was warm: the executor is shut down
            return
        log.info("workers_ready", workers=parts.workers, seconds=round(time.monotonic() - started, 3))

    # -- periodic jobs -----------------------------------------------------------------------

    def _periodic(self) -> list[tuple[str, float, Callable[[float], Awaitable[None] | None]]]:
        """(name, interval in seconds, job): each runs on the tick once its interval has passed."""
        daemon, parts = self.config.daemon, self.parts
        jobs: list[tuple[str, float, Callable[[float], Awaitable[None] | None]]] = [
            ("sweep", 0.0, self._sweep),
            ("status", daemon.status_interval_s, self._status),
        ]
        watchdog = sdnotify.watchdog_interval_s()
        if watchdog is not None:
            jobs.append(("watchdog", watchdog, lambda mono: sdnotify.notify(sdnotify.WATCHDOG)))
        if parts.state.enabled:
            jobs.append(("snapshot", self.config.state.snapshot_interval_s, lambda mono: self.snapshot()))
        history = parts.history
        if history is not None:
            jobs.append(("history", history.config.interval_s, lambda mono: history.tick(parts.stats, parts.clock())))
        source = parts.nats_source
        if source is not None and not parts.state.enabled:
            # No snapshot to wait for: a message is acknowledged once counted.
            jobs.append(("nats_ack", 1.0, lambda mono: source.acknowledge(source.position())))
        archive = parts.pipeline.archive
        if archive is not None and archive.config.fsync == "interval":
            jobs.append(("archive_fsync", archive.config.fsync_interval_ms / 1000, lambda mono: archive.sync()))
        return jobs

    async def _tick(self) -> None:
        last: dict[str, float] = {"snapshot": time.monotonic()}
        while not self._stopping.is_set():
            await asyncio.sleep(self.config.daemon.tick_interval_s)
            mono = time.monotonic()
            for name, interval, job in self._periodic():
                if mono - last.get(name, 0.0) < interval:
                    continue
                last[name] = mono
                try:
                    pending = job(mono)
                    if pending is not None:
                        await pending
                except Exception as exc:  # one failing job must not stop the others
                    self.job_failures[name] = self.job_failures.get(name, 0) + 1
                    self._job_log.log("error", "periodic_job_failed", key=name, job=name, error=repr(exc))

    def _sweep(self, mono: float) -> None:
        parts = self.parts
        parts.connections.sweep_idle(mono)
        parts.hub.sweep_stalled(mono)
        parts.publish_events(parts.driver.tick(mono))
        parts.alerts.tick()
        due = parts.hub.due_for_stats(mono)
        if due:
            line = _json.encode({"type": "stats", **parts.stats_report("all")}) + b"\n"
            for sub in due:
                sub.offer(line)
        due = parts.hub.due_for_stats(mono, "stats.cluster") if parts.cluster is not None else []
        if due:
            view = parts.cluster.view  # type: ignore[union-attr]
            line = _json.encode({"type": "stats", "cluster": True, **view.report("all", parts.clock())}) + b"\n"
            for sub in due:
                sub.offer(line)

    async def _status(self, mono: float) -> None:
        parts = self.parts
        sdnotify.notify(sdnotify.status(parts.status_line()))
        parts.pipeline.reject_log.flush()
        parts.connections.log.flush()
        parts.alerts.try_log.flush()
        self._job_log.flush()
        if parts.pipeline.archive is not None:
            await parts.pipeline.archive.tick()

    async def snapshot(self, clean: bool = False) -> None:
        """Write a snapshot. The write runs to its end even when the caller is cancelled (the
        periodic one at shutdown), and one snapshot at a time: the final one is never overwritten
        by an older one still being written."""
        task = asyncio.get_running_loop().create_task(self._snapshot(clean))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        await asyncio.shield(task)

    async def _snapshot(self, clean: bool) -> None:
        async with self._snapshot_lock:
            await self._write_snapshot(clean)

    async def _write_snapshot(self, clean: bool) -> None:
        parts, archive = self.parts, self.parts.pipeline.archive
        # Totals and archive position in one step, with no await between: replay after a crash
        # then counts exactly the lines these totals lack.
        source = parts.nats_source
        nats = source.position() if source is not None else None
        fleet = parts.cluster.checkpoint() if parts.cluster is not None else None
        data = parts.state.encode(parts.stats, parts.driver.engine, parts.pipeline.archived, clean, nats,
                                  None if fleet is None else fleet[0])
        if archive is not None and archive.config.fsync != "never":
            await archive.sync()  # the snapshot never points past what a power loss leaves on disk
        saved = parts.state.saved
        await parts.state.write(data, parts.clock())
        if parts.state.saved > saved and fleet is not None:
            parts.cluster.outbox.durable_up_to(fleet[1])  # type: ignore[union-attr]
        if source is not None and nats is not None and parts.state.saved > saved:
            await source.acknowledge(nats)  # only now: a kill -9 from here on restores these counts

    # -- reload ------------------------------------------------------------------------------

    def _reload_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._background.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._background.discard)

    async def reload(self) -> None:
        """SIGHUP: apply a new config without dropping connections or state."""
        sdnotify.notify(*sdnotify.reloading_lines())
        try:
            new = self.overrides(load_config(self.config_path)) if self.config_path else self.config
            token = load_token(new.control)
            http_token = self._http_token(new)
        except ConfigError as exc:
            log.error("reload_rejected", reason=str(exc))
            sdnotify.notify(sdnotify.READY, sdnotify.status("reload rejected: " + str(exc)[:200]))
            return
        old = self.config
        # Windows and sketch sizes shape the stored state, and the NATS connections are made once
        # at start: changing these needs a restart, so the running values stay and the log says so.
        kept = [name for name, changed in (
            ("stats", new.stats != old.stats), ("cluster", new.cluster != old.cluster),
            ("sources.nats", new.sources.nats != old.sources.nats)) if changed]
        if kept:
            log.warning("reload_needs_restart", sections=kept)
        new = msgspec.structs.replace(new, stats=old.stats, cluster=old.cluster,
                                      sources=msgspec.structs.replace(new.sources, nats=old.sources.nats))
        configure_logging(new.log)
        self.parts.reconfigure(new, token)
        self.parts.http_token = http_token
        await self.endpoints.move(old, new)
        log.info("listening", **self.endpoints.addresses, workers=self.parts.workers)
        log.info("reloaded", config=self.config_path)
        sdnotify.notify(sdnotify.READY, sdnotify.status(self.parts.status_line()))

    def _http_token(self, new: Config) -> str | None:
        """`[http] token_file` read again; a reload that would leave an open listener off loopback
        with no token (and no waiver) is refused, as such a listener is refused at start."""
        token = read_token(new.http.token_file, "http.token_file")
        bound = self.endpoints.addresses.get("http")
        if (token is None and bound is not None and not new.http.allow_unauthenticated
                and ("http" in self.endpoints.pinned or new.http.listen == self.config.http.listen)
                and not is_loopback(split_address(bound)[0])):
            raise ConfigError(f"http listener {bound} is not on loopback and http.token_file is not set "
                              "(http.allow_unauthenticated = true serves it anyway)")
        return token

    # -- stop --------------------------------------------------------------------------------

    def request_stop(self, reason: str = "") -> None:
        if not self._stopping.is_set():
            log.info("stopping", reason=reason)
            sdnotify.notify(sdnotify.STOPPING)
            self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        parts = self.parts
        parts.ready = False  # /readyz on a connection still open says so
        # Stop accepting; connections already open stay.
        self.endpoints.close(*(name for name in self.endpoints.addresses if name != "udp"))
        await parts.jobs.close()
        if parts.work_queue is not None:
            await parts.work_queue.stop()  # batches not answered go to another node
        if parts.nats_source is not None:
            await parts.nats_source.stop()  # no more pulls; what was taken drains below
        # Let open senders finish, then stop reading datagrams.
        await parts.connections.wait_closed(self.config.pipeline.shutdown_grace_s)
        self.endpoints.close("udp")
        # Everything received goes through the parsers and into the windows.
        await parts.pipeline.drain()
        if self._tick_task is not None:
            self._tick_task.cancel()
        parts.publish_events(parts.driver.tick(time.monotonic()))
        # What survives a restart (the fleet seconds still unpublished included: a durable
        # second may go out once this is written), then the last seconds go out, one try each.
        if parts.state.enabled:
            await self.snapshot(clean=True)
        if parts.cluster is not None:
            await parts.cluster.close()
        # The last notifications (each route gets one try's timeout), then the routes stop.
        await parts.alerts.close()
        # Then the files that hold every line.
        if parts.nats_source is not None:
            if not parts.state.enabled:
                await parts.nats_source.acknowledge(parts.nats_source.position())
            await parts.nats_source.close()
        if parts.history is not None:
            await parts.history.tick(parts.stats, parts.clock())  # the minutes closed since the last job
            parts.history.close()
        if parts.rejects is not None:
            await parts.rejects.close()
        if parts.pipeline.archive is not None:
            await parts.pipeline.archive.close()
        for conn in list(parts.control_connections):
            if conn.transport is not None:
                conn.transport.close()
        end_streams(parts.hub)
        await parts.http_connections.close(self.config.pipeline.shutdown_grace_s)
        parts.executor.shutdown(wait=True, cancel_futures=True)
        totals = parts.stats.report("all", parts.clock())
        rejected = sum(totals["rejected"].values())
        log.info("stopped", received=totals["received"], parsed=totals["parsed"], rejected=rejected,
                 balanced=totals["received"] == totals["parsed"] + rejected)


async def replay_archive(pipeline: Pipeline, archive: Archive, since: ArchivePosition) -> int:
    """Count the archived lines after `since` through `pipeline`; returns how many."""
    end = archive.position
    plan = await asyncio.to_thread(plan_directory, since, archive.directory, (end.generation, end.offset))
    if pipeline.options.listener_parse:
        # The archive keeps lines, not the listener they came in on.
        log.warning("archive_replay_parse_differs", listeners=sorted(pipeline.options.listener_parse),
                    hint="replayed lines parse with [parse], not these listeners' own parse options")
    if plan.gap is not None:
        log.warning("archive_replay_gap", reason=plan.gap, snapshot=msgspec.to_builtins(since),
                    archive=msgspec.to_builtins(end))
    started = time.monotonic()
    chunk_lines = pipeline.config.batch_lines * pipeline.config.max_in_flight
    replayed = await pipeline.replay(read_frames(archive.directory, plan.files, end.offset, chunk_lines))
    log.info("archive_replayed", lines=replayed, since=msgspec.to_builtins(since), until=msgspec.to_builtins(end),
             seconds=round(time.monotonic() - started, 3))
    return replayed


async def serve(config: Config, config_path: str | None = None, pinned: set[str] | None = None,
                overrides: Callable[[Config], Config] = lambda config: config) -> int:
    from logtallyd.daemon.activation import inherited_listeners

    server = Server(build(config), config_path, pinned, overrides)
    await server.start(inherited_listeners())
    quiet_process_gc()  # this process is the daemon's own: its GC is tuned like a worker's
    await server.wait_stopped()
    await server.stop()
    return 0
