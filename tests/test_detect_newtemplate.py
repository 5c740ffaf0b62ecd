"""New error template detector: silent warm-up, one event per new template, bounded memory,
rate limit, the grouping of `TOP error`, and the example is the earliest occurrence whatever the
batch order."""
from __future__ import annotations

import random
import re

import pytest

from logtallyd.detect.config import DetectConfig, NewTemplateConfig, SpikeConfig
from logtallyd.detect.engine import Engine
from logtallyd.detect.events import NewTemplate
from logtallyd.detect.feed import Feed
from logtallyd.detect.replay import build_feeds, replay
from logtallyd.records import Record

T0 = 1_700_000_000


def template(message: str) -> str:
    return re.sub(r"\d+", "<n>", message)


def config(**fields: object) -> DetectConfig:
    return DetectConfig(
        newtemplate=NewTemplateConfig(**({"warmup_s": 100} | fields)),  # type: ignore[arg-type]
        spike=SpikeConfig(enabled=False),
        patterns=[],
    )


def err(t: float, message: str, service: str = "api") -> Record:
    return Record("app", message=message, ts=T0 + t, service=service, severity=2)


def test_new_template_after_warmup_fires_once() -> None:
    records = [err(0, "db timeout after 30 ms"), err(50, "cache miss storm")]
    records += [err(150, "db timeout after 99 ms"), err(160, "disk /dev/sdb1 failed", "storage")]
    records += [err(161, "disk /dev/sdb2 failed", "storage"), err(170, "cache miss storm")]
    records.append(Record("app", message="brand new info line", ts=T0 + 180, service="api", severity=6))
    events = replay(records, config(), template)
    assert events == [
        NewTemplate(T0 + 160.0, "newtemplate", "storage", "disk /dev/sdb<n> failed", "disk /dev/sdb1 failed", 1)
    ]


@pytest.mark.parametrize(("at", "fires"), [(99, False), (100, True)])
def test_warmup_sits_exactly_at_its_value(at: int, fires: bool) -> None:
    records = [err(0, "first"), err(at, "second")]
    assert len(replay(records, config(), template)) == (1 if fires else 0)


def test_flood_of_new_templates_is_rate_limited() -> None:
    # Each of its own length, so the grouping leaves them apart.
    messages = ["alpha exploded", "bravo has gone", "charlie is on fire", "delta a b c d", "echo a b c d e"]
    records = [err(0, "warm")] + [err(120 + i, m) for i, m in enumerate(messages)]
    records += [err(180, "foxtrot")]  # next minute: budget again
    engine = Engine(config(max_events_per_minute=2))
    for data in build_feeds(records, engine.config, template):
        engine.consume(Feed.from_bytes(data))
    events = engine.flush()
    assert [e.template for e in events] == ["alpha exploded", "bravo has gone", "foxtrot"]
    assert engine.stats()["suppressed_new_templates"] == 3
    # the suppressed ones were learned: they do not fire later
    for data in build_feeds([err(300, "charlie is on fire")], engine.config, template):
        engine.consume(Feed.from_bytes(data))
    assert engine.flush() == []


def test_forgotten_templates_fire_again() -> None:
    records = [err(0, "warm"), err(200, "one"), err(201, "two"), err(202, "three"), err(203, "one")]
    events = replay(records, config(max_templates=2), template)
    # "warm" then "one" are forgotten as "two" and "three" arrive
    assert [e.template for e in events] == ["one", "two", "three", "one"]


def test_example_is_the_earliest_whatever_the_batch_order() -> None:
    records = [err(0, "warm")] + [err(150 + i / 100, f"queue {i} overflow") for i in range(40)]
    cfg = config()
    feeds = build_feeds(records, cfg, template, batch_lines=3)
    random.Random(7).shuffle(feeds)
    engine = Engine(cfg)
    for data in feeds:
        engine.consume(Feed.from_bytes(data))
    (event,) = engine.flush()
    assert (event.example, event.count, event.ts) == ("queue 0 overflow", 40, T0 + 150.0)


def test_a_word_varying_like_a_value_is_not_a_new_template() -> None:
    """The grouping of TOP error: once THRESHOLD names share a pattern, a further name is no news."""
    from logtallyd.stats.grouping import THRESHOLD

    names = ["admin", "oracle", "test", "guest", "pi", "ubuntu", "nagios", "ftp"]
    records = [err(0, "warm")] + [err(i, f"login failed for {u}") for i, u in enumerate(names[:THRESHOLD], 1)]
    records += [err(200, f"login failed for {names[THRESHOLD]}"), err(201, "disk sda failed")]
    records += [err(202, f"login failed for {names[THRESHOLD + 1]}"), err(203, "disk sdb failed")]
    events = replay(records, config(), template)
    # The names were learned in the warm-up and group; the disks are two, too few to group.
    assert [(e.template, e.example) for e in events] == [
        ("disk sda failed", "disk sda failed"), ("disk sdb failed", "disk sdb failed")
    ]
    # Fresh names in one second, after the warm-up, group with each other: one event for them.
    records = [err(0, "warm")] + [err(150, f"user {u} locked out") for u in names[:THRESHOLD]]
    (event,) = replay(records, config(), template)
    assert event.template == "user <*> locked out" and event.count == 1


@pytest.mark.parametrize(("limit", "fires"), [(0, True), (2, True), (3, False), (100000, False)])
def test_max_grouped_sits_exactly_at_its_value(limit: int, fires: bool) -> None:
    """A fresh name is grouped with the `max_grouped` most recent remembered templates of its
    length: THRESHOLD (4) distinct names need 3 of them besides the fresh one."""
    from logtallyd.stats.grouping import THRESHOLD

    assert THRESHOLD == 4
    names = ["admin", "oracle", "test", "guest", "pi"]
    records = [err(0, "warm")] + [err(i, f"login failed for {u}") for i, u in enumerate(names[:4], 1)]
    records.append(err(200, "login failed for pi"))
    events = replay(records, config(max_grouped=limit), template)
    assert [e.template for e in events] == (["login failed for pi"] if fires else [])


@pytest.mark.parametrize(("value", "ok"), [(-1, False), (0, True), (100000, True), (100001, False)])
def test_max_grouped_range(value: int, ok: bool) -> None:
    import msgspec

    if ok:
        assert NewTemplateConfig(max_grouped=value).max_grouped == value
    else:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"max_grouped": value}, NewTemplateConfig)
