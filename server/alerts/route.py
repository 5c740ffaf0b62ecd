"""One route's state, sans-I/O: which events it takes, one alert per group key that fires,
repeats and resolves, and the bounded outbox its delivery task empties (oldest dropped first).

Each alert is one state value, `Alert`, present while firing and gone once resolved:
    (none)  --event-->           firing   (sends "firing")
    firing  --event-->           firing   (counted; a reminder once `repeat_interval_s` passed)
    firing  --tick, repeat due-> firing   (sends a reminder)
    firing  --ending event-->    (none)   (sends "resolved" when `send_resolved`)
    firing  --tick, quiet for `resolve_after_s`, kind not ENDED_BY_EVENT--> (none)   (likewise)
The clock is handed in (`now`, Unix seconds), so the table above is tested with plain values.
"""
from __future__ import annotations

import collections
from typing import Any, Literal

import msgspec

from logtallyd.alerts.config import SEVERITIES, AlertRoute
from logtallyd.alerts.notice import ENDED_BY_EVENT, Notification, event_labels, event_severity, resolves
from logtallyd.detect.events import Event

__all__ = ["Alert", "DeadReason", "Failure", "RouteCore", "RouteFigures", "backoff_s"]

# Why one try failed; "rejected" (a 4xx other than 408/429) and "spawn" are not retried.
Failure = Literal["timeout", "connect", "http_status", "rejected", "exit_status", "spawn"]
FINAL: frozenset[Failure] = frozenset({"rejected", "spawn"})
# Why a notification went to the dead-letter file (its `reason` field there).
DeadReason = Literal["dropped", "failed", "unsent_at_stop"]
# Dropped or failed notifications waiting for the dead-letter writer, which takes them all on its
# next turn of the event loop: only one batch of events dropping more than this loses letters
# (counted as `dead_letters_skipped`).
DEAD_BACKLOG = 10000


def backoff_s(retry: int, initial_s: float, max_s: float, unit_random: float) -> float:
    """Seconds before retry number `retry` (0 = the first): exponential with "equal jitter"
    (half the capped delay, plus a random part of the other half), so routes that failed together
    do not retry together, and no retry comes sooner than half its delay."""
    ceiling = min(max_s, initial_s * 2.0 ** min(retry, 60))
    return ceiling / 2 + ceiling / 2 * unit_random


class Alert(msgspec.Struct):
    group_key: str
    labels: dict[str, str]
    starts_at: float
    last_event_at: float
    last_sent_at: float
    events: int
    event: dict[str, Any]


class RouteFigures(msgspec.Struct, frozen=True):
    """A route's line in `ALERTS` and its metrics. sent + failed + dropped + queued + in_flight
    = notifications (every notification is in exactly one of these)."""

    kind: str
    target: str  # the URL or program; "$VAR" when the URL comes from the environment
    matched: int  # events this route took
    notifications: int
    sent: int
    retried: int  # tries after the first
    failed: int  # given up after the last retry (or refused for good)
    dropped: int  # oldest queued, pushed out of a full queue
    queued: int
    in_flight: int
    active: int  # alerts firing now
    untracked: int  # events of new groups past max_active: sent once, never repeated or resolved
    errors: dict[str, int]  # failed tries by `Failure`
    dead_letters: int  # notifications written to the dead-letter file
    dead_letters_skipped: int  # not written: the file was at dead_letter_max_bytes


class RouteCore:
    def __init__(self, route: AlertRoute) -> None:
        self.route = route
        self.active: dict[str, Alert] = {}
        self.outbox: collections.deque[Notification] = collections.deque()
        self.in_flight = 0
        self.dead: collections.deque[tuple[DeadReason, Notification]] = collections.deque()  # to write
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()

    def reconfigure(self, route: AlertRoute) -> None:
        """SIGHUP: firing alerts stay; a smaller queue drops its oldest now."""
        self.route = route
        self._trim()

    # -- events and time ---------------------------------------------------------------------

    def takes(self, labels: dict[str, str], kind: str) -> bool:
        r = self.route
        return ((not r.kinds or kind in r.kinds)
                and (not r.services or labels.get("service") in r.services)
                and (not r.hosts or labels.get("host") in r.hosts)
                and SEVERITIES.index(event_severity(kind)) >= SEVERITIES.index(r.min_severity))

    def group_key(self, labels: dict[str, str]) -> str:
        return ",".join(f"{name}={labels.get(name, '')}" for name in self.route.group_by)

    def offer(self, event: Event, now: float) -> None:
        labels = event_labels(event)
        kind = labels["kind"]
        if not self.takes(labels, kind):
            return
        self.counts["matched"] += 1
        key = self.group_key(labels)
        data = msgspec.to_builtins(event)
        if resolves(event) is not None:
            alert = self.active.pop(key, None)
            if alert is not None:
                alert.events += 1
                alert.event = data
                self._resolved(alert, now)
            return
        alert = self.active.get(key)
        if alert is None:
            alert = Alert(key, labels, now, now, now, 1, data)
            if len(self.active) >= self.route.max_active:
                self.counts["untracked"] += 1
            else:
                self.active[key] = alert
            self._send(alert, "firing", repeat=False)
            return
        alert.events += 1
        alert.event = data
        alert.last_event_at = now
        if self._repeat_due(alert, now):
            alert.last_sent_at = now
            self._send(alert, "firing", repeat=True)

    def tick(self, now: float) -> None:
        """Reminders that are due, and alerts whose events stopped `resolve_after_s` ago."""
        for key, alert in list(self.active.items()):
            if alert.labels["kind"] not in ENDED_BY_EVENT and now - alert.last_event_at >= self.route.resolve_after_s:
                del self.active[key]
                self._resolved(alert, now)
            elif self._repeat_due(alert, now):
                alert.last_sent_at = now
                self._send(alert, "firing", repeat=True)

    def _repeat_due(self, alert: Alert, now: float) -> bool:
        every = self.route.repeat_interval_s
        return every > 0 and now - alert.last_sent_at >= every

    def _resolved(self, alert: Alert, now: float) -> None:
        if self.route.send_resolved:
            self._send(alert, "resolved", repeat=False, ends_at=now)

    def _send(self, alert: Alert, status: Literal["firing", "resolved"], repeat: bool,
              ends_at: float | None = None) -> None:
        self.counts["notifications"] += 1
        self.outbox.append(Notification(
            self.route.name, status, alert.group_key, alert.labels, event_severity(alert.labels["kind"]),
            alert.starts_at, ends_at, alert.events, repeat, alert.event,
        ))
        self._trim()

    def _trim(self) -> None:
        while len(self.outbox) > self.route.queue_size:
            self.counts["dropped"] += 1
            self._dead("dropped", self.outbox.popleft())

    def _dead(self, why: DeadReason, n: Notification) -> None:
        if len(self.dead) >= DEAD_BACKLOG:
            self.counts["dead_letters_skipped"] += 1
            return
        self.dead.append((why, n))

    # -- the delivery task's side ------------------------------------------------------------

    def take(self) -> Notification | None:
        """The oldest queued notification, now in flight, or None."""
        if not self.outbox:
            return None
        self.in_flight += 1
        return self.outbox.popleft()

    def tried(self, failure: Failure | None, retry: bool) -> None:
        """One try's outcome; `retry` when another try follows."""
        if failure is not None:
            self.errors[failure] += 1
        if retry:
            self.counts["retried"] += 1

    def done(self, n: Notification, delivered: bool) -> None:
        self.in_flight -= 1
        if delivered:
            self.counts["sent"] += 1
        else:
            self.counts["failed"] += 1
            self._dead("failed", n)

    def figures(self, target: str) -> RouteFigures:
        c = self.counts
        return RouteFigures(
            kind=self.route.kind, target=target, matched=c["matched"], notifications=c["notifications"],
            sent=c["sent"], retried=c["retried"], failed=c["failed"], dropped=c["dropped"],
            queued=len(self.outbox), in_flight=self.in_flight, active=len(self.active), untracked=c["untracked"],
            errors=dict(sorted(self.errors.items())), dead_letters=c["dead_letters"],
            dead_letters_skipped=c["dead_letters_skipped"],
        )
