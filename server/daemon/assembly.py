"""The daemon's parts, built from the config with every collaborator passed to its constructor,
and the two things the parts answer together: the STATS/METRICS reports, assembled from each
part's `figures()`, and SIGHUP, applied through each part's `reconfigure(section)`.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import msgspec
import structlog

from logtallyd.alerts.deliver import AlertService
from logtallyd.daemon.config import Config
from logtallyd.daemon.tokenfile import load_token
from logtallyd.detect.driver import Driver
from logtallyd.detect.engine import Engine
from logtallyd.detect.events import Event
from logtallyd.detect.feed import Feed
from logtallyd.ingest.listeners import Connections, UdpIngest
from logtallyd.ingest.peers import Peers
from logtallyd.ingest.pipeline import Pipeline
from logtallyd.persist.archive import Archive, ArchivePosition
from logtallyd.persist.history import History, open_history
from logtallyd.persist.rejects import RejectsFile
from logtallyd.persist.state import StateStore
from logtallyd.pool.scheduler import PoolScheduler, worker_context
from logtallyd.pool.worker import BatchResult, WorkerOptions, late_options, start_worker
from logtallyd.primes.jobs import JobManager
from logtallyd.publish.commands import Commands
from logtallyd.publish.control import ControlConnection
from logtallyd.publish.http import HttpConnections
from logtallyd.publish.pubsub import Hub
from logtallyd.ratelog import RateLimitedLog, RateLimiter
from logtallyd.stats.lifetime import Totals, totals_of
from logtallyd.stats.windows import Stats

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from logtallyd.cluster.node import ClusterNode
    from logtallyd.ingest.jetstream import NatsSource
    from logtallyd.pool.workqueue import WorkQueueNode
    from logtallyd.publish.metrics import MetricFigures

log = structlog.get_logger()


@dataclass
class Parts:
    config: Config
    clock: Callable[[], float]
    started_mono: float
    state: StateStore
    stats: Stats
    driver: Driver
    connections: Connections
    hub: Hub
    executor: ProcessPoolExecutor
    workers: int
    scheduler: PoolScheduler
    jobs: JobManager
    rejects: RejectsFile | None
    pipeline: Pipeline
    commands: Commands
    control_connections: set[ControlConnection]
    http_connections: HttpConnections
    udp: list[UdpIngest] = field(default_factory=list)  # one per UDP socket served, closed ones too
    restored_archive: ArchivePosition | None = None  # where the restored totals end in the archive
    job_failures: dict[str, int] = field(default_factory=dict)  # periodic job -> times it raised
    alerts: AlertService = field(default_factory=lambda: AlertService([]))
    history: History | None = None  # per-minute trends in SQLite; None when off
    nats_source: NatsSource | None = None  # `[sources.nats]`; None when off
    http_token: str | None = None  # `[http] token_file`'s token, read when the listener opens and on SIGHUP
    work_queue: WorkQueueNode | None = None  # this node's share of `analyze --nats` runs; None without NATS
    ready: bool = False  # every configured listener open, the worker pool warm (`/readyz`)
    # The totals when this process began listening: the Prometheus counters count from there.
    baseline: Totals = field(default_factory=Totals)
    # This daemon's metrics (`METRICS`, `/metrics`), built at the first scrape: prometheus_client
    # is not loaded before then.
    registry: CollectorRegistry | None = None
    cluster: ClusterNode | None = None  # `[cluster] nats` set: the bus and the fleet view

    # -- reports -----------------------------------------------------------------------------

    def stats_report(self, window: str) -> dict[str, Any]:
        report = self.stats.report(window, self.clock())
        report["connections"] = msgspec.to_builtins(self.connections.figures())
        report["peers"] = msgspec.to_builtins(self.connections.peers.figures())
        report["pipeline"] = msgspec.to_builtins(self.pipeline.figures())
        report["subscribers"] = {**msgspec.to_builtins(self.hub.figures()), "tail_skipped": self.pipeline.tail_skipped}
        report["udp"] = {"datagrams": sum(u.datagrams for u in self.udp),
                         "kernel_drops": sum(u.kernel_drops() for u in self.udp)}
        report["control"] = msgspec.to_builtins(self.commands.gate.figures())
        report["detect"] = self.driver.engine.stats()
        report["job_failures"] = dict(sorted(self.job_failures.items()))
        report["uptime_s"] = self.uptime_s()
        if self.rejects is not None:
            report["rejects_file"] = msgspec.to_builtins(self.rejects.figures())
        if self.pipeline.archive is not None:
            report["archive"] = msgspec.to_builtins(self.pipeline.archive.figures())
        if self.history is not None:
            report["history"] = self.history.figures()
        if self.cluster is not None:
            report["cluster"] = self.cluster.figures()
        if self.nats_source is not None:
            report["nats_source"] = msgspec.to_builtins(self.nats_source.figures())
        if self.config.http.listen:
            report["http_server"] = msgspec.to_builtins(self.http_connections.figures())
        return report

    def totals(self) -> Totals:
        return totals_of(self.stats, self.driver.engine.counters)

    def begin_counting(self) -> None:
        """From now on the counters count: called once, as the listeners open (after the archive
        replay, whose lines the previous process took in)."""
        self.baseline = self.totals()

    def metrics_figures(self) -> MetricFigures:
        from logtallyd.publish.metrics import MetricFigures

        totals = self.stats.report("all", self.clock())
        counted = self.totals().since(self.baseline)
        connections, pipeline, hub = self.connections.figures(), self.pipeline.figures(), self.hub.figures()
        return MetricFigures(
            lines_received=counted.received,
            lines_parsed=counted.parsed,
            lines_rejected=counted.rejected,
            lines_by_format=counted.by_format,
            lines_by_level=counted.by_level,
            lines_late=counted.late,
            lines_future=counted.future,
            lines_restored=self.baseline.received,
            bytes_received=counted.bytes,
            access_log_responses=counted.by_status_class,
            anomaly_events=counted.events,
            connections_open=connections.open,
            connections_total=connections.total,
            connections_handshaking=connections.handshaking,
            connections_refused=connections.refused_by,
            connections_idle_closed=connections.idle_closed,
            http_connections_closed=self.http_connections.closed_by,
            http_responses=self.http_connections.responses_by_class,
            batches_in_flight=pipeline.in_flight + pipeline.queued_batches,
            buffered_bytes=pipeline.buffered_bytes,
            batch_seconds_sum=self.pipeline.batch_seconds_sum,
            batch_seconds_count=pipeline.batches,
            pool_workers=self.workers,
            pool_busy_workers=self.scheduler.busy,
            subscribers=hub.open,
            subscriber_messages_dropped=hub.dropped_messages,
            jobs=self.jobs.states(),
            udp_datagrams=sum(u.datagrams for u in self.udp),
            udp_kernel_drops=sum(u.kernel_drops() for u in self.udp),
            job_failures=dict(self.job_failures),
            distinct_values={k: d["estimate"] for k, d in totals["distinct"].items()},
            distinct_rel_err=totals["distinct_rel_err"],
            top_max_error=self.stats.top_errors(),
            alert_routes={name: {"sent": r.sent, "retried": r.retried, "failed": r.failed, "dropped": r.dropped,
                                 "queued": r.queued, "active": r.active}
                          for name, r in self.alerts.figures().items()},
            uptime_s=self.uptime_s(),
        )

    def metrics(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape body and content type for an `Accept` header (`/metrics`)."""
        from logtallyd.publish.metrics import daemon_registry, exposition

        if self.registry is None:
            self.registry = daemon_registry(self.metrics_figures)
        return exposition(self.registry, accept)

    def metrics_text(self) -> str:
        """METRICS: the same registry in the text format 0.0.4."""
        return self.metrics()[0].decode()

    def alerts_report(self) -> dict[str, Any]:
        """ALERTS: the alerts firing now, and each route's counts."""
        return {"alerts": self.alerts.active(),
                "routes": {name: msgspec.to_builtins(r) for name, r in self.alerts.figures().items()}}

    def recent_events(self, n: int) -> list[Event]:
        return list(self.driver.engine.recent(n))

    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started_mono, 3)

    def status_line(self) -> str:
        rate = self.stats.lines_per_s("1m", self.clock()) if "1m" in self.config.stats.windows else 0.0
        return (
            f"{len(self.connections.open)} connections, "
            f"{rate:.0f} lines/s (1m), {self.pipeline.in_flight} batches in flight"
        )

    # -- SIGHUP ------------------------------------------------------------------------------

    def reconfigure(self, new: Config, token: str | None = None) -> None:
        """Apply what can change live; `[stats]` shapes the stored state and needs a restart."""
        self.config = new
        self.connections.reconfigure(new.ingest)
        self.http_connections.reconfigure(new.http)
        self.pipeline.reconfigure(new.pipeline, worker_options(new, self.pipeline.options.tail_filters))
        self.driver.reconfigure(new.detect, new.pipeline.event_lateness_s)
        self.hub.reconfigure(new.control)
        self.jobs.reconfigure(new.primes)
        self.commands.reconfigure(new, token)
        self.alerts.reconfigure(new.alerts)
        if self.cluster is not None:
            self.cluster.reconfigure(new.detect)

    # -- glue between stages -----------------------------------------------------------------

    def tail_changed(self) -> None:
        """Tell the workers which records the current `tail` subscribers want."""
        terms = self.hub.tail_terms()
        if terms != self.pipeline.options.tail_filters:
            self.pipeline.options = msgspec.structs.replace(self.pipeline.options, tail_filters=terms)

    def publish_events(self, events: list[Event]) -> None:
        for event in events:
            log.info("anomaly", **msgspec.to_builtins(event))
            self.hub.publish("anomalies", event)
        self.alerts.publish(events)

    def publish_cluster_event(self, event: Event) -> None:
        """A fleet event, once as the events stream stores it: to `SUBSCRIBE anomalies cluster`
        only. The alert routes take this node's own events; a fleet event would reach them once
        per viewing node."""
        if self.hub.wants("anomalies.cluster"):
            self.hub.publish("anomalies.cluster", {**msgspec.to_builtins(event), "cluster": True})


def worker_options(config: Config, tail_filters: tuple[tuple[str, ...], ...] = ()) -> WorkerOptions:
    return WorkerOptions(parse=config.parse, detect=config.detect, listener_parse=config.listener_parse(),
                         tail_filters=tail_filters, distinct_lg_k=config.stats.distinct_lg_k,
                         sender_hostnames=config.ingest.sender_hostnames, **late_options(config.stats))


def build(config: Config) -> Parts:
    """Every part of the daemon, restored from the last snapshot where there is one."""
    clock = time.time
    state = StateStore(config.state)
    if state.path is not None:
        log.info("state_directory", directory=str(state.path.parent))
    restored = state.load(config.stats, config.detect)
    stats = restored.stats if restored else Stats(config.stats, clock())
    engine = restored.engine if restored else Engine(config.detect)
    driver = Driver(engine, config.pipeline.event_lateness_s, config.stats.max_future_s)
    connections = Connections(
        config.ingest.max_connections, config.ingest.idle_timeout_s, config.ingest.max_message_bytes,
        config.ingest.reject_sample_bytes,
        RateLimiter(config.log.connection_events_per_interval, config.log.rate_interval_s),
        config.ingest.delimiter,
        config.ingest.max_connections_per_peer,
        Peers(config.ingest.max_peers, config.ingest.peer_lines_per_s, config.ingest.peer_burst_lines,
              config.ingest.peer_report, config.ingest.sender_hostnames),
    )
    parts: Parts  # the callbacks below run after it is built
    hub = Hub(config.control.subscriber_queue, config.control.stalled_subscriber_s, time.monotonic,
              on_leave=lambda sub: parts.tail_changed())
    workers = config.pipeline.workers or os.cpu_count() or 1
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(),
                                   initializer=start_worker, initargs=(os.getpid(),))
    scheduler = PoolScheduler(executor, slots=workers)
    jobs = JobManager(scheduler, config.primes, lambda m: hub.publish("jobs", m))
    rejects = RejectsFile(config.rejects.path, config.rejects.max_bytes) if config.rejects.path else None

    def batch_done(seq: int, result: BatchResult | None, now: float) -> None:
        feed = Feed.from_bytes(result.feed) if result is not None else None
        if feed is not None and parts.cluster is not None:
            # The feed as the local engine will take it (future seconds gone), before it does.
            dropped = driver.drop_future(feed)
            parts.cluster.outbox.add_feed(feed.to_bytes() if dropped else result.feed)  # type: ignore[union-attr]
        parts.publish_events(driver.add(feed, time.monotonic()))

    pipeline = Pipeline(
        config.pipeline, worker_options(config), scheduler, stats, rejects,
        pause=connections.pause, resume=connections.resume,
        archive=Archive(config.archive) if config.archive.enabled else None,
        on_tail=hub.publish_tail, on_result=batch_done, clock=clock,
        log_limiter=RateLimiter(config.log.rejected_per_interval, config.log.rate_interval_s),
        peers=connections.peers,
    )
    history = open_history(config.history, None if state.path is None else str(state.path.parent))
    if history is not None:
        stats.on_retire = history.retire
    cluster = None
    if config.cluster.nats:  # imported only then: a node alone never loads nats-py
        from logtallyd.cluster.connect import node_name
        from logtallyd.cluster.node import ClusterNode

        cluster = ClusterNode(config.cluster, node_name(config.cluster), config.stats, config.detect, stats, driver,
                              clock, on_event=lambda event: parts.publish_cluster_event(event),
                              restored=restored.cluster if restored else None)
    commands = Commands(
        config, stats, jobs, clock,
        lambda window: parts.stats_report(window), lambda n: parts.recent_events(n), lambda: parts.metrics_text(),
        load_token(config.control),
        senders=lambda: connections.peers.senders(time.monotonic()),
        alerts_report=lambda: parts.alerts_report(),
        history=None if history is None else lambda c, now: history.answer(c.series, c.step, c.since_s, stats.anchor(now)),
        cluster=None if cluster is None or not config.cluster.view else cluster,
    )
    alerts = AlertService(config.alerts, try_log=RateLimitedLog(
        RateLimiter(config.log.rejected_per_interval, config.log.rate_interval_s)))
    parts = Parts(
        config=config, clock=clock, started_mono=time.monotonic(), state=state, stats=stats, driver=driver,
        connections=connections, hub=hub, executor=executor, workers=workers, scheduler=scheduler, jobs=jobs,
        rejects=rejects, pipeline=pipeline, commands=commands, control_connections=set(),
        restored_archive=restored.archive if restored else None,
        http_connections=HttpConnections(config.http), alerts=alerts, history=history, cluster=cluster,
    )
    if config.sources.nats.subjects:
        # Only now: without `[sources.nats]` neither this module nor nats-py is imported.
        from logtallyd.cluster.connect import node_name
        from logtallyd.ingest.jetstream import NatsSource

        parts.nats_source = NatsSource(config.sources.nats, config.cluster, node_name(config.cluster), pipeline,
                                       config.ingest.max_message_bytes, config.ingest.reject_sample_bytes,
                                       restored.nats if restored else None)
    if config.cluster.nats:
        from logtallyd.cluster.connect import node_name
        from logtallyd.pool.workqueue import WorkQueueNode

        parts.work_queue = WorkQueueNode(config.cluster, node_name(config.cluster), scheduler, workers)
    parts.baseline = parts.totals()
    return parts
