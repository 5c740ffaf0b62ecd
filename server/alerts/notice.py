"""What an event says to a route: its labels and severity, and the notification payloads
(webhook JSON schema v1, Slack, Alertmanager v2) built from an alert. Pure functions of values.
"""
from __future__ import annotations

import time
from typing import Any, Literal

import msgspec

from logtallyd.alerts.config import Severity
from logtallyd.detect.events import Event

__all__ = ["Notification", "SCHEMA", "alertmanager_body", "event_labels", "event_severity", "rfc3339",
           "resolves", "slack_body", "summary", "webhook_body"]

SCHEMA = "logtally.alert/1"  # bumped when a field of `webhook_body` changes meaning or goes

# What an event's `key` is, by kind; `pattern` events say so in their `field`.
_KEY_IS = {"error_spike": "service", "zscore": "service", "new_template": "service", "suspicious_ip": "ip"}
# A kind missing here is a "warning": a new detector's events route before anyone ranks them.
SEVERITY: dict[str, Severity] = {
    "error_spike": "critical", "suspicious_ip": "warning", "pattern": "warning", "zscore": "warning",
    "new_template": "info", "sender_silent": "critical", "sender_flood": "warning",
}
# Kinds whose end is an event of their own: `resolved` (with `of`) or a kind listed here. Alerts
# of every other kind resolve once no event of their group came for the route's `resolve_after_s`.
ENDED_BY_EVENT = {"error_spike", "suspicious_ip", "sender_silent"}
_RESOLVING = {"sender_back": "sender_silent"}
# Label names copied from any event that has them as text, so new kinds need no table entry.
_COPIED = ("service", "host", "ip", "pattern", "metric", "sender")


def resolves(event: Event) -> str | None:
    """The kind whose alert `event` ends, or None when it opens or continues one."""
    if event.type == "resolved":
        return str(getattr(event, "of", ""))
    return _RESOLVING.get(event.type)


def event_labels(event: Event) -> dict[str, str]:
    """`kind` (a resolution carries the kind it ends), `detector`, `key`, and what the key is."""
    data = msgspec.to_builtins(event)
    kind = resolves(event) or event.type
    labels = {"kind": kind, "detector": event.detector, "key": event.key}
    meaning = data.get("field") if kind == "pattern" else _KEY_IS.get(kind)
    if isinstance(meaning, str) and event.key != "*":
        labels[meaning] = event.key
    for name in _COPIED:
        if isinstance(data.get(name), str):
            labels[name] = data[name]
    return labels


def event_severity(kind: str) -> Severity:
    return SEVERITY.get(kind, "warning")


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class Notification(msgspec.Struct, frozen=True):
    """One message to one route: an alert firing (first or repeated) or resolved."""

    route: str
    status: Literal["firing", "resolved"]
    group_key: str
    labels: dict[str, str]
    severity: Severity
    starts_at: float  # the daemon's clock when the alert opened
    ends_at: float | None  # when it resolved
    events: int  # events of the group since it opened
    repeat: bool  # a reminder of an alert already sent
    event: dict[str, Any]  # the latest event, as `EVENTS` shows it


def summary(n: Notification) -> str:
    e, kind = n.event, n.labels.get("kind", "")
    what = {
        "error_spike": lambda: f"{e.get('count')} errors in {e.get('window_s')} s (threshold {e.get('threshold')})",
        "suspicious_ip": lambda: f"{e.get('bad')} of {e.get('total')} requests failed",
        "zscore": lambda: f"{e.get('metric')} = {e.get('value')} (z = {e.get('z')})",
        "pattern": lambda: f"pattern {e.get('pattern')} matched",
        "new_template": lambda: f"new error template: {e.get('template')}",
    }.get(kind)
    head = f"[{n.status.upper()}] {kind} on {n.labels.get('key', '')}"
    return f"{head}: {what()}" if what is not None and n.status == "firing" else head


def webhook_body(n: Notification) -> dict[str, Any]:
    """The documented webhook and exec JSON (README, "Alerts"), schema `SCHEMA`."""
    return {
        "schema": SCHEMA, "route": n.route, "status": n.status, "group_key": n.group_key,
        "labels": n.labels, "severity": n.severity, "summary": summary(n),
        "starts_at": rfc3339(n.starts_at), "ends_at": rfc3339(n.ends_at) if n.ends_at is not None else None,
        "events": n.events, "repeat": n.repeat, "event": n.event,
    }


def slack_body(n: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` for notifications, `blocks` for the channel."""
    text = summary(n)
    fields = " · ".join(f"*{k}*: {v}" for k, v in sorted(n.labels.items()))
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{fields} · *severity*: {n.severity}"}]},
        ],
    }


def alertmanager_body(n: Notification) -> list[dict[str, Any]]:
    """Alertmanager API v2 `postableAlerts`: an alert with `endsAt` in the past is resolved."""
    alert: dict[str, Any] = {
        "labels": {"alertname": f"logtally_{n.labels.get('kind', 'event')}", **n.labels,
                   "severity": n.severity, "route": n.route},
        "annotations": {"summary": summary(n), "event": msgspec.json.encode(n.event).decode()},
        "startsAt": rfc3339(n.starts_at),
    }
    if n.ends_at is not None:
        alert["endsAt"] = rfc3339(n.ends_at)
    return [alert]
