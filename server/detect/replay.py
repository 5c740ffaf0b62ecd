"""Records through feeds and an engine in one process, batched as the server batches them:
for the detectors' tests. Sans-I/O: records in, events out.
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterable

from logtallyd.detect.config import DetectConfig
from logtallyd.detect.engine import Engine
from logtallyd.detect.events import Event
from logtallyd.detect.feed import Feed
from logtallyd.records import Record, is_error


def second_of(record: Record, arrival: float) -> int:
    """Event time when the record has one, arrival time otherwise (as the worker files it)."""
    return int(record.ts) if record.ts is not None else int(arrival)


def build_feeds(
    records: Iterable[Record],
    config: DetectConfig,
    template_of: Callable[[str], str],
    batch_lines: int = 2000,
    arrival: float = 0.0,
    origin: int = 0,
) -> list[bytes]:
    """Cut records into batches and build each batch's feed as a worker would (as bytes);
    batches are numbered (`Feed.origin`) from `origin` on, in stream order."""
    feeds: list[bytes] = []
    it = iter(records)
    while batch := list(itertools.islice(it, batch_lines)):
        feed = Feed(config, origin=origin + len(feeds))
        seconds = [second_of(record, arrival) for record in batch]
        templates = [template_of(r.message) if is_error(r) else None for r in batch]
        feed.add_many(batch, seconds, templates)
        feeds.append(feed.to_bytes())
    return feeds


def replay(
    records: Iterable[Record],
    config: DetectConfig,
    template_of: Callable[[str], str],
    batch_lines: int = 2000,
) -> list[Event]:
    """Every event the records produce, as if streamed and then ended (flush with drain)."""
    engine = Engine(config)
    for data in build_feeds(records, config, template_of, batch_lines):
        engine.consume(Feed.from_bytes(data))
    return engine.flush()
