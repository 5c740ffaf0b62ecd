"""Answers to decoded control commands, from the parts of the daemon each one reads.

A handler returns its answer (a Struct, a report dict, a stream, or what the connection should do:
`Join`, `Leave`, `Close`); it never holds the connection or its transport.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol, assert_never

from logtallyd.primes.commands import Cancel, IsPrime, Jobs, PrimeCommands, PrimeCount, PrimeList
from logtallyd.publish.access import Access, Gate, Refusal, is_privileged
from logtallyd.publish.protocol import (
    Alerts, Answer, Auth, Close, Cluster, Command, CommandError, CommandLimits, Deny, Error, EventList, Events, Grant, Help,
    HelpList, History, HistoryList, Join, Leave, Metrics, MetricsText, Ping, Pong, Quit, Senders, Stats, Subscribe, Top, TopList, Unsubscribe,
    help_text,
)
from logtallyd.publish.tailfilter import compile_filter

if TYPE_CHECKING:
    from logtallyd.publish.protocol import Config
    from logtallyd.primes.jobs import JobManager
    from logtallyd.stats.windows import Stats as Statistics


_NO_CLUSTER = "cluster is off: start the daemon with --nats URL (or set [cluster] nats)"


class ClusterAnswers(Protocol):
    """What the cluster commands read: the merged view and the events stream (`logtallyd.cluster.node`)."""

    @property
    def stats(self) -> Statistics: ...

    def report(self, window: str, now: float) -> dict[str, Any]: ...
    def table(self, now: float) -> dict[str, Any]: ...
    def events(self, n: int, now: float) -> dict[str, Any]: ...


_REFUSALS: dict[Refusal, str] = {
    "auth_required": "auth required: send AUTH <token> first, or use the control Unix socket",
    "auth_failed": "auth failed",
    "auth_throttled": "auth refused: too many failed AUTHs in the last minute",
    "auth_unconfigured": "auth unavailable: the daemon has no control.token_file; use the control Unix socket",
}


class Commands:
    """Answers every control command; holds the current limits and token so that SIGHUP applies them.

    `token` is the AUTH token (None: no AUTH over TCP); `monotonic` times the failed-AUTH limit.
    """

    def __init__(self, config: Config, statistics: Statistics, jobs: JobManager, clock: Callable[[], float],
                 stats_report: Callable[[str], dict[str, Any]], recent_events: Callable[[int], list[Any]],
                 metrics_text: Callable[[], str], token: str | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 senders: Callable[[], Any] | None = None,
                 alerts_report: Callable[[], dict[str, Any]] = lambda: {"alerts": [], "routes": {}},
                 history: Callable[[History, float], Awaitable[dict[str, Any]]] | None = None,
                 cluster: ClusterAnswers | None = None) -> None:
        self.limits = CommandLimits.from_config(config)
        self.max_pending_commands = config.control.max_pending_commands
        self.gate = Gate(token, config.control.auth_failures_per_minute)
        self.monotonic = monotonic
        self.statistics = statistics
        self.clock = clock
        self.stats_report = stats_report
        self.recent_events = recent_events
        self.metrics_text = metrics_text
        self.senders = senders  # the SENDERS answer (the ingest sender table)
        self.alerts_report = alerts_report
        self.history = history  # None: no `[state]` directory, or `[history] enabled = false`
        self.primes = PrimeCommands(jobs)
        self.cluster = cluster  # None: `[cluster] nats` is off

    def reconfigure(self, config: Config, token: str | None = None) -> None:
        """SIGHUP: the next command is decoded with the new limits and the next AUTH checks the new token."""
        self.limits = CommandLimits.from_config(config)
        self.max_pending_commands = config.control.max_pending_commands
        self.gate.reconfigure(token, config.control.auth_failures_per_minute)

    async def answer(self, command: Command | CommandError, access: Access, source: str = "") -> Answer:
        """The answer to `command` from a connection with `access` from address `source`."""
        if access == "anonymous" and is_privileged(command):
            return Error(_REFUSALS[self.gate.refuse("auth_required")])
        match command:
            case CommandError(message):
                return Error(message)
            case Ping():
                return Pong()
            case Help():
                return HelpList(help_text(self.limits))
            case Stats(_, True) | Top(_, _, _, True) | Events(_, True) | Cluster() if self.cluster is None:
                return Error(_NO_CLUSTER)
            case Stats(window, True):
                assert self.cluster is not None
                return self.cluster.report(window, self.clock())
            case Stats(window):
                return self.stats_report(window)
            case Cluster():
                assert self.cluster is not None
                return self.cluster.table(self.clock())
            case Events(n, True):
                assert self.cluster is not None
                return self.cluster.events(n, self.clock())
            case Top(field, n, window, cluster):
                statistics = self.statistics if not cluster else self.cluster.stats  # type: ignore[union-attr]
                try:
                    items = statistics.top(field, n, window, self.clock())
                except (KeyError, ValueError) as exc:  # a field the statistics do not count
                    return Error(str(exc).strip("'\""))
                return TopList(field, window, n, items)
            case Events(n):
                return EventList(self.recent_events(n))
            case Metrics():
                return MetricsText(self.metrics_text())
            case Senders():
                return self.senders() if self.senders is not None else Error("no sender table")
            case Alerts():
                return self.alerts_report()
            case History():
                if self.history is None:
                    return Error("history is off: it needs a [state] directory and [history] enabled = true")
                answer = await self.history(command, self.clock())
                return Error(answer["error"]) if "error" in answer else HistoryList(**answer)
            case Subscribe(topics) if self.cluster is None and any(t.endswith(".cluster") for t in topics):
                return Error(_NO_CLUSTER)
            case Subscribe(topics, interval_s, filters):
                # decoding checked that the terms compile
                tail_filter = compile_filter(list(filters)) if filters else None
                assert not isinstance(tail_filter, str)
                return Join(topics, interval_s, tail_filter, filters)
            case Unsubscribe(topics):
                return Leave(topics)
            case Quit():
                return Close()
            case Auth(token):
                refusal = self.gate.authenticate(token, self.monotonic(), source)
                return Grant() if refusal is None else Deny(_REFUSALS[refusal])
            case PrimeCount() | PrimeList() | IsPrime() | Jobs() | Cancel():
                return await self.primes.answer(command)
            case _:
                assert_never(command)
