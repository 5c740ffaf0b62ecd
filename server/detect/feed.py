"""The detectors' input for one batch, counted in a worker: per event second, mergeable, bounded.

`Feed.add_many` tallies a batch's parsed records column by column (per service line/error counts
and latency histograms, error templates with one example, per-IP HTTP totals, and the records
that match a pattern step); the bytes cross the pipe and `Engine.consume` merges them.
"""
from __future__ import annotations

import collections
import functools
import ipaddress
import operator
import re
from typing import Callable, Iterable, Sequence

import msgspec

from logtallyd.stats.aggregate import Groups, by_second
from logtallyd.detect.config import DetectConfig, Pattern
from logtallyd.detect.histogram import bucket_of, merge_into
from logtallyd.records import ERROR_SEVERITY, Record

NO_SERVICE = "-"  # the service key of records that name none
MAX_LINE_CHARS = 512  # matched messages are kept this long at most (they end up in events)

# (event time, batch origin, index in batch): the order of records, total and the same
# whichever worker built the feed. Ties in event time fall back to stream order.
Order = tuple[float, int, int]


class ServiceTally(msgspec.Struct, array_like=True):
    lines: int = 0
    errors: int = 0
    latency: dict[int, int] = {}  # histogram bucket -> count (logtallyd.detect.histogram)


class TemplateTally(msgspec.Struct, array_like=True):
    count: int
    example: str
    order: Order  # of the example: the earliest occurrence wins on merge


class IpTally(msgspec.Struct, array_like=True):
    total: int = 0
    bad: int = 0  # HTTP status >= 400


class Match(msgspec.Struct, array_like=True, frozen=True):
    """A record that matched at least one pattern step: (pattern index, step index) pairs."""

    order: Order
    ts: float  # event time used for gaps: Record.ts, or the second it was filed under
    ip: str | None
    host: str | None
    service: str | None
    message: str
    steps: list[tuple[int, int]]


class Second(msgspec.Struct, array_like=True):
    services: dict[str, ServiceTally] = {}
    templates: dict[str, dict[str, TemplateTally]] = {}  # service -> template -> tally
    ips: dict[str, IpTally] = {}
    matches: list[Match] = []
    senders: dict[str, int] = {}  # sender address -> lines (live only: a file names no sender)

    def lines(self) -> int:
        return sum(t.lines for t in self.services.values())


class FeedData(msgspec.Struct):
    origin: int = 0
    pattern_ids: list[str] = []  # Match.steps' pattern index -> pattern_id(pattern)
    seconds: dict[int, Second] = {}
    dropped_matches: int = 0  # over pattern.max_matches_per_feed
    records: int = 0


def pattern_id(pattern: Pattern) -> str:
    """Identifies a pattern's definition, so a feed built before a SIGHUP is not misread."""
    return msgspec.json.encode([pattern.name, pattern.key, pattern.steps]).decode()


class Feed:
    """Built per batch in a worker from `DetectConfig`; `origin` orders batches of one stream.

    Pass `origin` = a counter taken when the batch is cut (0, 1, 2, ... across all streams):
    lines that share a timestamp are then ordered as they arrived, in replays and streams
    alike, and the driver knows which earlier batches are still in flight.
    """

    def __init__(self, config: DetectConfig | None = None, origin: int = 0) -> None:
        patterns = config.patterns if config is not None else []
        self.data = FeedData(origin=origin, pattern_ids=[pattern_id(p) for p in patterns])
        self._matchers = _compile(tuple(self.data.pattern_ids)) if patterns else ()
        self._wants_ip = any(p.key == "ip" for p in patterns)
        self._max_matches = config.pattern.max_matches_per_feed if config is not None else 0
        self._matched = 0

    def add_many(
        self,
        records: Sequence[Record],
        seconds: Sequence[int],
        templates: Sequence[str | None],
        groups: Groups | None = None,
        senders: Sequence[str] | None = None,
    ) -> None:
        """Count parsed records (aligned lists: record, event second, and the error template or
        None); calls add up, record indices continuing across them. `groups` is
        `by_second(seconds)` when the caller has it already; `senders`, aligned too, each
        record's sender address ("" = none)."""
        n = len(records)
        if not n:
            return
        data = self.data
        base = data.records
        data.records = base + n
        for second, positions in by_second(seconds) if groups is None else groups:
            if senders is not None:
                self._add_senders(second, senders if positions is None else map(senders.__getitem__, positions))
            if positions is None:
                self._add_second(second, records, range(n), templates, base)
            else:
                self._add_second(
                    second,
                    list(map(records.__getitem__, positions)),
                    positions,
                    list(map(templates.__getitem__, positions)),
                    base,
                )
        if self._matchers:
            self._match_many(records, seconds, base)

    def _add_senders(self, second: int, senders: Iterable[str]) -> None:
        sec = self.data.seconds.get(second)
        if sec is None:
            sec = self.data.seconds[second] = Second()
        counts = sec.senders
        for sender, lines in collections.Counter(senders).items():
            if sender:
                counts[sender] = counts.get(sender, 0) + lines

    def _add_second(
        self,
        second: int,
        recs: Sequence[Record],
        positions: Sequence[int],
        templates: Sequence[str | None],
        base: int,
    ) -> None:
        data = self.data
        sec = data.seconds.get(second)
        if sec is None:
            sec = data.seconds[second] = Second()
        services = list(map(_SERVICE, recs))
        if None in services or "" in services:
            services = [s or NO_SERVICE for s in services]
        tallies = sec.services
        for service, lines in collections.Counter(services).items():
            tally = tallies.get(service)
            if tally is None:
                tally = tallies[service] = ServiceTally()
            tally.lines += lines
        severities = list(map(_SEVERITY, recs))
        if any(s is not None and s <= ERROR_SEVERITY for s in severities):
            for i, severity in enumerate(severities):
                if severity is None or severity > ERROR_SEVERITY:
                    continue
                service = services[i]
                tallies[service].errors += 1
                template = templates[i]
                if template is None:
                    continue
                by_template = sec.templates.get(service)
                if by_template is None:
                    by_template = sec.templates[service] = {}
                seen = by_template.get(template)
                if seen is None:
                    record = recs[i]
                    time = record.ts if record.ts is not None else float(second)
                    by_template[template] = TemplateTally(
                        1, record.message[:MAX_LINE_CHARS], (time, data.origin, base + positions[i])
                    )
                else:
                    seen.count += 1
        https = list(map(_HTTP, recs))
        if https.count(None) == len(https):
            return
        ips = sec.ips
        buckets: dict[float, int] = {}  # latency -> histogram bucket, for this call
        for service, http in zip(services, https):
            if http is None:
                continue
            latency = http.latency_ms
            if latency is not None:
                b = buckets.get(latency)
                if b is None:
                    b = buckets[latency] = bucket_of(latency)
                histogram = tallies[service].latency
                histogram[b] = histogram.get(b, 0) + 1
            ip, status = http.ip, http.status
            if ip is not None and status is not None:
                t = ips.get(ip)
                if t is None:
                    t = ips[ip] = IpTally()
                t.total += 1
                if status >= 400:
                    t.bad += 1

    def _match_many(self, records: Sequence[Record], seconds: Sequence[int], base: int) -> None:
        messages = list(map(_MESSAGE, records))
        # One substring search over the whole batch rules most steps out at once (a message is
        # a substring of the joined text, so nothing is missed).
        joined = "\n".join(messages)
        steps_of: dict[int, list[tuple[int, int]]] = {}
        for test, pairs in self._matchers:
            needle = getattr(test, "needle", None)
            if needle is not None:
                if needle not in joined:
                    continue
                hits = [i for i, m in enumerate(messages) if needle in m]
            else:
                hits = [i for i, m in enumerate(messages) if test(m)]
            for i in hits:
                steps = steps_of.get(i)
                if steps is None:
                    steps_of[i] = list(pairs)
                else:
                    steps.extend(pairs)
        for i in sorted(steps_of):
            second = seconds[i]
            record = records[i]
            time = record.ts if record.ts is not None else float(second)
            self._matched_record(record, self.data.seconds[second], time, base + i, steps_of[i])

    def _matched_record(
        self, record: Record, sec: Second, time: float, index: int, steps: list[tuple[int, int]]
    ) -> None:
        message = record.message
        data = self.data
        if self._matched >= self._max_matches:
            data.dropped_matches += 1
            return
        self._matched += 1
        steps.sort()
        ip = None
        if self._wants_ip:
            ip = record.http.ip if record.http is not None and record.http.ip else ip_in(message)
        sec.matches.append(
            Match(
                (time, data.origin, index),
                time,
                ip,
                record.host,
                record.service,
                message[:MAX_LINE_CHARS],
                steps,
            )
        )

    def to_bytes(self) -> bytes:
        return _encoder.encode(self.data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Feed:
        feed = cls()
        feed.data = _decoder.decode(data)
        return feed


def merge_second(target: Second, source: Second) -> None:
    """Add `source` into `target` (associative and commutative, up to the order of matches)."""
    for service, theirs in source.services.items():
        mine = target.services.get(service)
        if mine is None:
            target.services[service] = ServiceTally(theirs.lines, theirs.errors, dict(theirs.latency))
        else:
            mine.lines += theirs.lines
            mine.errors += theirs.errors
            merge_into(mine.latency, theirs.latency)
    for service, templates in source.templates.items():
        mine_t = target.templates.setdefault(service, {})
        for template, theirs_t in templates.items():
            seen = mine_t.get(template)
            if seen is None:
                mine_t[template] = TemplateTally(theirs_t.count, theirs_t.example, theirs_t.order)
            else:
                seen.count += theirs_t.count
                if theirs_t.order < seen.order:
                    seen.example, seen.order = theirs_t.example, theirs_t.order
    for sender, lines in source.senders.items():
        target.senders[sender] = target.senders.get(sender, 0) + lines
    for ip, theirs_ip in source.ips.items():
        mine_ip = target.ips.get(ip)
        if mine_ip is None:
            target.ips[ip] = IpTally(theirs_ip.total, theirs_ip.bad)
        else:
            mine_ip.total += theirs_ip.total
            mine_ip.bad += theirs_ip.bad
    target.matches.extend(source.matches)  # sorted by `order` when the second is processed


def merge_feed(target: FeedData, source: FeedData) -> None:
    """Add `source` into `target`: per event second with `merge_second`. Patterns only `source`
    knows are appended to `target.pattern_ids`, so merging feeds built under two `[detect]`
    configs (a SIGHUP between them) loses no match. Takes ownership of `source`."""
    if source.pattern_ids != target.pattern_ids:
        where = {ident: i for i, ident in enumerate(target.pattern_ids)}
        for ident in source.pattern_ids:
            if ident not in where:
                where[ident] = len(target.pattern_ids)
                target.pattern_ids.append(ident)
        index = [where[ident] for ident in source.pattern_ids]
        for sec in source.seconds.values():
            sec.matches = [
                Match(m.order, m.ts, m.ip, m.host, m.service, m.message, sorted((index[p], s) for p, s in m.steps))
                for m in sec.matches
            ]
    for second, sec in source.seconds.items():
        mine = target.seconds.get(second)
        if mine is None:
            target.seconds[second] = sec
        else:
            merge_second(mine, sec)
    target.records += source.records
    target.dropped_matches += source.dropped_matches


_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?![\w:])")


def ip_in(message: str) -> str | None:
    """The first IPv4 or IPv6 address written in a message (sshd: "... from 1.2.3.4 port 22")."""
    candidates = [(m.start(), m.group()) for m in _IPV4.finditer(message)]
    if ":" in message:
        candidates += [(m.start(), m.group()) for m in _IPV6.finditer(message)]
    for _, text in sorted(candidates):
        try:
            return str(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            continue
    return None


Matcher = tuple[Callable[[str], bool], list[tuple[int, int]]]


@functools.lru_cache(maxsize=8)
def _compile(ids: tuple[str, ...]) -> tuple[Matcher, ...]:
    """Distinct step matchers, each with the (pattern, step) pairs it stands for."""
    by_step: dict[str, list[tuple[int, int]]] = {}
    for p, ident in enumerate(ids):
        _name, _key, steps = msgspec.json.decode(ident)
        for s, step in enumerate(steps):
            by_step.setdefault(step, []).append((p, s))
    matchers: list[Matcher] = []
    for step, pairs in by_step.items():
        if step.startswith("re:"):
            test: Callable[[str], bool] = _regex_test(re.compile(step[3:]))
        else:
            test = _substring_test(step)
        matchers.append((test, pairs))
    return tuple(matchers)


def _regex_test(rx: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda message: rx.search(message) is not None


class _Substring:
    """A step that is a plain substring (its `needle` lets `add_many` search a batch at once)."""

    __slots__ = ("needle",)

    def __init__(self, needle: str) -> None:
        self.needle = needle

    def __call__(self, message: str) -> bool:
        return self.needle in message


def _substring_test(needle: str) -> Callable[[str], bool]:
    return _Substring(needle)


_SERVICE = operator.attrgetter("service")
_SEVERITY = operator.attrgetter("severity")
_HTTP = operator.attrgetter("http")
_MESSAGE = operator.attrgetter("message")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(FeedData)
