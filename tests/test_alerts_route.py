"""The alert route core with plain values: routing filters, one alert per group that fires,
repeats and resolves (by its ending event, or by quiet time), the bounded outbox, the backoff."""
from __future__ import annotations

import msgspec
import pytest

from logtallyd.alerts.config import AlertRoute
from logtallyd.alerts.notice import alertmanager_body, event_labels, slack_body, webhook_body
from logtallyd.alerts.route import RouteCore, backoff_s
from logtallyd.daemon.config import ConfigError, decode_config
from logtallyd.detect.events import ErrorSpike, Event, NewTemplate, Resolved, SuspiciousIp


def spike(key: str = "api", ts: float = 100.0) -> ErrorSpike:
    return ErrorSpike(ts, "spike", key, 60, 60, 50, [])


def ended(key: str = "api", ts: float = 200.0) -> Resolved:
    return Resolved(ts, "spike", key, "error_spike", 3, 60, 100.0)


def route(**kw: object) -> AlertRoute:
    return msgspec.convert({"name": "r", "kind": "webhook", "url": "http://127.0.0.1:9/", **kw}, AlertRoute)


def statuses(core: RouteCore) -> list[tuple[str, str, bool]]:
    out = [(n.status, n.group_key, n.repeat) for n in core.outbox]
    core.outbox.clear()
    return out


def test_a_burst_fires_once_and_its_resolution_ends_it() -> None:
    core = RouteCore(route())
    core.offer(spike(), 1000.0)
    core.offer(spike(), 1001.0)  # the same group while firing: counted, not sent again
    assert statuses(core) == [("firing", "kind=error_spike,key=api", False)]
    core.offer(ended(), 1002.0)
    assert statuses(core) == [("resolved", "kind=error_spike,key=api", False)]
    assert core.active == {}
    core.offer(ended(), 1003.0)  # nothing firing: nothing to resolve
    assert statuses(core) == []


def test_repeat_interval_reminds_while_firing() -> None:
    core = RouteCore(route(repeat_interval_s=10))
    core.offer(spike(), 1000.0)
    core.tick(1009.9)
    core.tick(1010.0)
    core.tick(1015.0)
    core.tick(1020.0)
    assert [s[2] for s in statuses(core)] == [False, True, True]


def test_a_kind_without_an_ending_event_resolves_after_quiet_time() -> None:
    core = RouteCore(route(resolve_after_s=30, repeat_interval_s=0))
    nt = NewTemplate(5.0, "newtemplate", "api", "boom <*>", "boom 1", 1)
    core.offer(nt, 1000.0)
    core.offer(nt, 1020.0)
    core.tick(1049.9)
    core.tick(1050.0)
    assert [s[0] for s in statuses(core)] == ["firing", "resolved"]
    # error_spike waits for its `resolved` event, however quiet
    core.offer(spike(), 2000.0)
    core.tick(9000.0)
    assert [s[0] for s in statuses(core)] == ["firing"]


def test_send_resolved_false_sends_no_resolution() -> None:
    core = RouteCore(route(send_resolved=False))
    core.offer(spike(), 1.0)
    core.offer(ended(), 2.0)
    assert [s[0] for s in statuses(core)] == ["firing"]
    assert core.active == {}


@pytest.mark.parametrize(("kw", "taken"), [
    ({}, ["api", "web", "*", "ip"]),
    ({"kinds": ["suspicious_ip"]}, ["ip"]),
    ({"services": ["web"]}, ["web"]),  # the overall spike ("*") and the IP have no service
    ({"min_severity": "critical"}, ["api", "web", "*"]),
    ({"hosts": ["h1"]}, []),  # none of these events names a host
])
def test_filters(kw: dict, taken: list[str]) -> None:
    core = RouteCore(route(**kw))
    for event in (spike("api"), spike("web"), spike("*"), SuspiciousIp(1.0, "suspicious", "ip", 50, 50, 1.0, 60, "count")):
        core.offer(event, 1.0)
    assert [n.labels["key"] for n in core.outbox] == taken


def test_group_by_decides_what_one_alert_is() -> None:
    core = RouteCore(route(group_by=["kind"]))
    core.offer(spike("api"), 1.0)
    core.offer(spike("web"), 2.0)
    assert statuses(core) == [("firing", "kind=error_spike", False)]
    assert core.active["kind=error_spike"].events == 2


def test_queue_bound_drops_the_oldest_and_counts_them() -> None:
    core = RouteCore(route(queue_size=3, group_by=["key"]))
    for i in range(10):
        core.offer(spike(f"s{i}"), float(i))
    assert [n.labels["key"] for n in core.outbox] == ["s7", "s8", "s9"]
    figures = core.figures("t")
    assert (figures.dropped, figures.queued, figures.notifications) == (7, 3, 10)
    assert [why for why, _ in core.dead] == ["dropped"] * 7


def test_max_active_at_its_limit_sends_untracked() -> None:
    core = RouteCore(route(max_active=1, group_by=["key"]))
    core.offer(spike("a"), 1.0)
    core.offer(spike("b"), 1.0)
    assert list(core.active) == ["key=a"]
    assert core.figures("t").untracked == 1 and len(core.outbox) == 2


def test_every_notification_is_accounted_for() -> None:
    core = RouteCore(route(queue_size=2, group_by=["key"]))
    for i in range(5):
        core.offer(spike(f"s{i}"), 1.0)
    n = core.take()
    assert n is not None
    core.tried("http_status", retry=True)
    core.done(n, delivered=False)
    f = core.figures("t")
    assert f.sent + f.failed + f.dropped + f.queued + f.in_flight == f.notifications == 5
    assert (f.failed, f.retried, f.errors) == (1, 1, {"http_status": 1})


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert [backoff_s(i, 1.0, 10.0, 1.0) for i in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [backoff_s(i, 1.0, 10.0, 0.0) for i in range(3)] == [0.5, 1.0, 2.0]
    assert backoff_s(10**6, 0.01, 86400, 0.5) == 86400 * 0.75


def test_labels_of_future_kinds_come_from_their_fields() -> None:
    class SenderSilent(Event, frozen=True, tag="sender_silent"):
        host: str

    event = SenderSilent(1.0, "sender", "10.0.0.1:514", "web1")
    labels = event_labels(event)
    assert labels == {"kind": "sender_silent", "detector": "sender", "key": "10.0.0.1:514", "host": "web1"}
    core = RouteCore(route(hosts=["web1"], repeat_interval_s=0))
    core.offer(event, 1.0)
    core.tick(10**6)  # sender_silent ends by its own event (sender_back), not by quiet time
    assert [(n.status, n.severity) for n in core.outbox] == [("firing", "critical")]


def test_payload_shapes() -> None:
    core = RouteCore(route())
    core.offer(spike(), 1700000000.0)
    core.offer(ended(), 1700000060.5)
    firing, resolved = list(core.outbox)
    body = webhook_body(firing)
    assert body["schema"] == "logtally.alert/1" and body["status"] == "firing" and body["ends_at"] is None
    assert body["event"]["type"] == "error_spike" and body["starts_at"] == "2023-11-14T22:13:20.000Z"
    assert webhook_body(resolved)["ends_at"] == "2023-11-14T22:14:20.500Z"
    slack = slack_body(firing)
    assert slack["text"].startswith("[FIRING] error_spike on api") and slack["blocks"][0]["type"] == "section"
    (am,) = alertmanager_body(resolved)
    assert am["labels"]["alertname"] == "logtally_error_spike" and am["labels"]["service"] == "api"
    assert am["endsAt"] == "2023-11-14T22:14:20.500Z" and "endsAt" not in alertmanager_body(firing)[0]


@pytest.mark.parametrize(("block", "message"), [
    ({"kind": "webhook"}, "alerts[0] needs exactly one of url and url_env for kind = 'webhook'"),
    ({"kind": "webhook", "url": "ftp://x"}, "alerts[0].url must start with http:// or https://"),
    ({"kind": "exec"}, 'alerts[0].command is needed for kind = "exec"'),
    ({"kind": "slack", "url_env": "U", "token_env": "A", "token_file": "f"},
     "alerts[0]: token_env and token_file exclude each other"),
    ({"kind": "exec", "command": ["x"], "backoff_initial_s": 5, "backoff_max_s": 1},
     "alerts[0].backoff_initial_s must be <= backoff_max_s"),
])
def test_route_checks_name_the_key(block: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        decode_config({"alerts": [{"name": "a", **block}]}, "config.toml")
    assert str(caught.value) == "config.toml: " + message


def test_route_names_are_unique() -> None:
    block = {"name": "a", "kind": "exec", "command": ["true"]}
    with pytest.raises(ConfigError, match=r"alerts\[1\].name must be unique"):
        decode_config({"alerts": [block, block]})


def test_the_readme_example_routes_decode() -> None:
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "[[alerts]]" in b]
    config = decode_config(tomllib.loads(block))
    assert [(r.name, r.kind) for r in config.alerts] == [
        ("oncall", "alertmanager"), ("chat", "slack"), ("hook", "webhook"), ("page", "exec")]


def test_secret_headers_come_from_the_environment_or_a_file_and_missing_ones_are_named(tmp_path) -> None:
    from logtallyd.alerts.deliver import load_secret_headers, target_of

    token_file = tmp_path / "token"
    token_file.write_text("from-file\nignored\n")
    headers, missing = load_secret_headers(route(token_file=str(token_file), header_env={"X-Key": "K"}), {"K": "kv"})
    assert (headers, missing) == ({"Authorization": "Bearer from-file", "X-Key": "kv"}, [])
    headers, missing = load_secret_headers(route(token_env="T", header_env={"X-Key": "K"}), {})
    assert (headers, missing) == ({}, ["$T", "$K"])
    secret_url = msgspec.convert({"name": "s", "kind": "slack", "url_env": "HOOK"}, AlertRoute)
    assert target_of(secret_url) == "$HOOK"
    assert target_of(route(url="http://h/x?token=abc")) == "http://h/x"
