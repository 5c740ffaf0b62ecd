"""The detection engine: merges feeds into per-second buffers and runs every detector over the
seconds in event-time order once the watermark has passed them, so the events depend on the
records alone, never on the order in which batches completed. Lives in the main process.
"""
from __future__ import annotations

import collections
from typing import Iterable

import msgspec

from logtallyd.detect.config import DetectConfig
from logtallyd.detect.detector import Detector
from logtallyd.detect.events import AnyEvent, Event
from logtallyd.detect.feed import Feed, Match, Second, merge_second, pattern_id
from logtallyd.detect.newtemplate import NewTemplateDetector, NewTemplateState
from logtallyd.detect.pattern import PatternDetector, PatternState
from logtallyd.detect.senders import SendersDetector, SendersState
from logtallyd.detect.spike import SpikeDetector, SpikeState
from logtallyd.detect.suspicious import SuspiciousDetector, SuspiciousState
from logtallyd.detect.zscore import ZScoreDetector, ZScoreState


class EngineState(msgspec.Struct):
    """Everything a snapshot holds (config included, so a snapshot is self-describing)."""

    config: DetectConfig
    next_second: int | None = None  # the first second not yet processed
    empty_run: int = 0  # seconds without data walked in a row
    pending: dict[int, Second] = {}
    pattern_ids: list[str] = []  # what Match.steps' pattern indices in `pending` refer to
    recent: list[AnyEvent] = []
    counters: dict[str, int] = {}
    spike: SpikeState = msgspec.field(default_factory=SpikeState)
    zscore: ZScoreState = msgspec.field(default_factory=ZScoreState)
    suspicious: SuspiciousState = msgspec.field(default_factory=SuspiciousState)
    newtemplate: NewTemplateState = msgspec.field(default_factory=NewTemplateState)
    patterns: dict[str, PatternState] = {}
    senders: SendersState = msgspec.field(default_factory=SendersState)


class DetectFigures(msgspec.Struct):
    """What STATS `detect` shows: the engine's own counters, then each detector's figures."""

    # feeds, records, dropped_matches, late_lines, skipped_seconds, future_lines, events_<type>:
    # as counted so far (a counter that never moved is absent)
    counters: dict[str, int]
    pending_seconds: int  # seconds buffered, waiting for the watermark
    untracked_spike_errors: int  # errors of services beyond spike.max_services
    untracked_zscore_lines: int  # lines of services beyond zscore.max_services
    untracked_ip_requests: int  # requests of IPs beyond suspicious.max_ips
    untracked_pattern_keys: int  # step-0 matches of keys beyond pattern.max_keys
    suppressed_new_templates: int  # new templates over newtemplate.max_events_per_minute
    forgotten_senders: int  # senders forgotten past senders.max_senders (least recently seen)

    def report(self) -> dict[str, int]:
        """One flat map, counters first (the STATS `detect` object)."""
        report = dict(self.counters)
        for name in self.__struct_fields__[1:]:
            report[name] = getattr(self, name)
        return report


class Engine:
    def __init__(self, config: DetectConfig, state: EngineState | None = None) -> None:
        self._state = state if state is not None else EngineState(config)
        st = self._state
        st.config = config
        self._recent: collections.deque[Event] = collections.deque(st.recent, config.keep_events)
        self.spike = SpikeDetector(config, st.spike)
        self.suspicious = SuspiciousDetector(config, st.suspicious)
        self.zscore = ZScoreDetector(config, st.zscore)
        self.pattern = PatternDetector(config, st.patterns)
        self.newtemplate = NewTemplateDetector(config, st.newtemplate)
        self.senders = SendersDetector(config, st.senders)
        # Stepped in this order: the order of one second's events.
        self.detectors: tuple[Detector, ...] = (
            self.spike, self.suspicious, self.zscore, self.pattern, self.newtemplate, self.senders
        )
        self._remap_pending([pattern_id(p) for p in config.patterns])
        self.counters: collections.Counter[str] = collections.Counter(st.counters)

    @property
    def config(self) -> DetectConfig:
        return self._state.config

    @property
    def next_second(self) -> int | None:
        """Seconds before this one are processed: data for them arrives too late."""
        return self._state.next_second

    def consume(self, feed: Feed) -> None:
        """Buffer one batch's feed (takes ownership of it). Seconds already processed are late."""
        st = self._state
        data = feed.data
        self.counters["feeds"] += 1
        self.counters["records"] += data.records
        self.counters["dropped_matches"] += data.dropped_matches
        if data.pattern_ids != st.pattern_ids:
            _remap(data.seconds.values(), data.pattern_ids, st.pattern_ids)
        for second, sec in data.seconds.items():
            if st.next_second is not None and second < st.next_second:
                self.counters["late_lines"] += sec.lines()
                continue
            mine = st.pending.get(second)
            if mine is None:
                st.pending[second] = sec
            else:
                merge_second(mine, sec)

    def advance(self, watermark: int) -> list[Event]:
        """Process every second before `watermark`, with or without data, in order."""
        st = self._state
        if st.next_second is None:
            # Nothing processed yet: start at the earliest data, once the watermark passes it
            # (setting it earlier would make data still to come for earlier seconds late).
            if not st.pending or min(st.pending) >= watermark:
                return []
            st.next_second = min(st.pending)
        events: list[Event] = []
        limit = st.config.max_empty_walk_s
        while st.next_second < watermark:
            second = st.next_second
            data = st.pending.pop(second, None)
            self._process(second, data, events)
            st.next_second = second + 1
            if data is not None:
                st.empty_run = 0
                continue
            st.empty_run += 1
            if st.empty_run >= limit:
                # Every window has drained: jump over the rest of the gap.
                later = [s for s in st.pending if s > second]
                target = min(min(later), watermark) if later else watermark
                if target > st.next_second:
                    self.counters["skipped_seconds"] += target - st.next_second
                    st.next_second = target
                st.empty_run = 0
        return self._keep(events)

    def flush(self, drain: bool = True) -> list[Event]:
        """Process everything buffered (end of input). With `drain`, walk on without data until
        every sliding window has emptied and the last z-score interval has closed, so open
        episodes send `resolved` and the last interval is judged: what a live server does as
        its event clock runs on after the input stops (logtallyd.detect.driver.Driver), so a replay
        lists the same events as a stream. The drained seconds count as processed (later data
        for them is late), so do not drain a live stream."""
        st = self._state
        events: list[Event] = []
        if st.pending:
            events.extend(self.advance(max(st.pending) + 1))
        if drain and st.next_second is not None:
            config = st.config
            walk = max(config.spike.window_s, config.suspicious.window_s, config.zscore.interval_s)
            # The same per-second steps as `advance` over seconds without data (every detector,
            # so pattern keys expire and intervals close exactly as they would live).
            drained: list[Event] = []
            for second in range(st.next_second, st.next_second + walk):
                self._process(second, None, drained)
            st.next_second += walk
            st.empty_run = 0
            events.extend(self._keep(drained))
        return events

    def recent(self, n: int) -> list[Event]:
        """The last `n` events, oldest first."""
        if n <= 0:
            return []
        return list(self._recent)[-n:]

    def reconfigure(self, config: DetectConfig) -> None:
        """Apply a new `[detect]` section (SIGHUP), keeping windows, baselines and matches
        wherever their meaning is unchanged."""
        st = self._state
        st.config = config
        self._recent = collections.deque(self._recent, config.keep_events)
        for detector in self.detectors:
            detector.reconfigure(config)
        self._remap_pending([pattern_id(p) for p in config.patterns])

    def figures(self) -> DetectFigures:
        """Late lines, dropped matches, pending seconds and every detector's own figures."""
        mine: dict[str, int] = {}
        for detector in self.detectors:
            mine.update(detector.figures())
        return DetectFigures(
            counters=dict(self.counters), pending_seconds=len(self._state.pending), **mine
        )

    def stats(self) -> dict[str, int]:
        """`figures()` as the flat STATS `detect` object."""
        return self.figures().report()

    def to_bytes(self) -> bytes:
        st = self._state
        st.recent = list(self._recent)  # type: ignore[arg-type]
        st.counters = dict(self.counters)
        return _encoder.encode(st)

    @classmethod
    def from_bytes(cls, data: bytes, config: DetectConfig | None = None) -> Engine:
        """Restore a snapshot; with `config`, apply it as `reconfigure` would."""
        state = _decoder.decode(data)
        engine = cls(state.config, state)
        if config is not None:
            engine.reconfigure(config)
        return engine

    def _process(self, second: int, data: Second | None, events: list[Event]) -> None:
        for detector in self.detectors:
            if detector.enabled:
                events.extend(detector.step(second, data))

    def _keep(self, events: list[Event]) -> list[Event]:
        self._recent.extend(events)
        for event in events:
            self.counters[f"events_{event.type}"] += 1
        return events

    def _remap_pending(self, ids: list[str]) -> None:
        st = self._state
        if ids != st.pattern_ids:
            _remap(st.pending.values(), st.pattern_ids, ids)
            st.pattern_ids = ids


def _remap(seconds: Iterable[Second], old: list[str], new: list[str]) -> None:
    """Point matches' pattern indices at `new`; steps of patterns missing from `new` go."""
    where = {ident: i for i, ident in enumerate(new)}
    index = [where.get(ident) for ident in old]
    for sec in seconds:
        kept: list[Match] = []
        for match in sec.matches:
            steps = [
                (index[p], s) for p, s in match.steps if p < len(index) and index[p] is not None
            ]
            if steps:
                kept.append(
                    Match(
                        match.order, match.ts, match.ip, match.host, match.service, match.message,
                        sorted(steps),  # type: ignore[arg-type]
                    )
                )
        sec.matches = kept


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(EngineState)
