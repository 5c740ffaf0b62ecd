"""Sender detectors: a sender address that goes silent, comes back, or floods, judged against its
own rhythm learned in event time from the feed's per-second line counts (`Second.senders`).
`analyze` of a file has no sender addresses, so these never fire there.
"""
from __future__ import annotations

import heapq

import msgspec

from logtallyd.detect.config import DetectConfig, SendersConfig
from logtallyd.detect.detector import SectionDetector
from logtallyd.detect.events import Event, Resolved, SenderBack, SenderFlood, SenderSilent
from logtallyd.detect.feed import Second

DETECTOR = "senders"


class SenderTrack(msgspec.Struct, array_like=True):
    """One sender's baseline: EWMAs over the event seconds in which it sent lines."""

    last: int  # the last event second with its lines
    gap: float = 0.0  # usual seconds between two such seconds
    gaps: int = 0  # gaps learned
    rate: float = 0.0  # usual lines per such second
    seconds: int = 0  # such seconds learned
    silent: bool = False  # `sender_silent` sent, no line since
    flood_started: float | None = None  # the open flood episode's first second
    flood_peak: int = 0


class SendersState(msgspec.Struct):
    senders: dict[str, SenderTrack] = {}  # least recently seen first
    forgotten: int = 0  # senders dropped past `max_senders`


class SendersDetector(SectionDetector[SendersConfig, SendersState]):
    """Silence is found through a heap of deadlines (entries made stale by a later line are
    skipped), so a step costs the senders that sent in it, not every sender tracked."""

    def __init__(self, config: DetectConfig, state: SendersState) -> None:
        super().__init__(config, state)
        self._deadlines: list[tuple[float, str, int]] = []  # (silent after, sender, its last second then)
        self._rebuild()

    def section(self, config: DetectConfig) -> SendersConfig:
        return config.senders

    def figures(self) -> dict[str, int]:
        return {"forgotten_senders": self.state.forgotten}

    def reconfigure(self, config: DetectConfig) -> None:
        """A smaller `max_senders` forgets the least recently seen at once."""
        super().reconfigure(config)
        self._forget()
        self._rebuild()

    def step(self, second: int, data: Second | None) -> list[Event]:
        events: list[Event] = []
        tracks = self.state.senders
        if data is not None and data.senders:
            for sender in sorted(data.senders):  # one order of events, whatever the merge order
                track = tracks.pop(sender, None)
                lines = data.senders[sender]
                if track is None:
                    track = SenderTrack(second, rate=float(lines), seconds=1)
                else:
                    self._seen(second, sender, lines, track, events)
                tracks[sender] = track  # now the most recently seen
                self._arm(sender, track)
            self._forget()
        self._silences(second, events)
        return events

    def _seen(self, second: int, sender: str, lines: int, track: SenderTrack, events: list[Event]) -> None:
        config = self.config
        alpha = 2.0 / (config.window + 1)
        gap = second - track.last
        if track.silent:
            # The absence is not part of its rhythm: the usual gap stays what it was.
            track.silent = False
            events.append(SenderBack(float(second), DETECTOR, sender, gap, round(track.gap, 3), lines))
        elif gap > 0:
            track.gap = float(gap) if track.gaps == 0 else track.gap + alpha * (gap - track.gap)
            track.gaps += 1
        track.last = max(track.last, second)
        baseline = track.rate
        over = lines >= config.flood_min_lines and lines > config.flood_factor * baseline
        if track.flood_started is None:
            if over and track.seconds >= config.min_samples:
                track.flood_started, track.flood_peak = float(second), lines
                factor = round(lines / baseline, 3) if baseline > 0 else float(lines)
                events.append(SenderFlood(float(second), DETECTOR, sender, lines, round(baseline, 3), factor))
                return  # a flood does not raise the baseline it is judged against
        elif over:
            track.flood_peak = max(track.flood_peak, lines)
            return
        else:
            events.append(Resolved(float(second), DETECTOR, sender, "sender_flood", lines, track.flood_peak,
                                   track.flood_started))
            track.flood_started, track.flood_peak = None, 0
        track.rate += alpha * (lines - track.rate)
        track.seconds += 1

    def _deadline(self, track: SenderTrack) -> float | None:
        """The last second at which `track` is not yet silent; None while it is not judged."""
        if track.silent or track.gaps < self.config.min_samples:
            return None
        return track.last + max(float(self.config.min_silent_s), self.config.silent_multiple * track.gap)

    def _arm(self, sender: str, track: SenderTrack) -> None:
        deadline = self._deadline(track)
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, sender, track.last))
            if len(self._deadlines) > 4 * len(self.state.senders) + 64:
                self._rebuild()  # drop the stale entries

    def _rebuild(self) -> None:
        self._deadlines = []
        for sender, track in self.state.senders.items():
            deadline = self._deadline(track)
            if deadline is not None:
                self._deadlines.append((deadline, sender, track.last))
        heapq.heapify(self._deadlines)

    def _silences(self, second: int, events: list[Event]) -> None:
        heap, tracks = self._deadlines, self.state.senders
        fired: list[tuple[str, SenderTrack]] = []
        while heap and heap[0][0] < second:
            _, sender, last = heapq.heappop(heap)
            track = tracks.get(sender)
            if track is None or track.last != last or track.silent:
                continue  # it sent since, was forgotten, or is silent already
            track.silent = True
            fired.append((sender, track))
        for sender, track in sorted(fired):  # one order of events, whatever the heap's
            events.append(SenderSilent(float(second), DETECTOR, sender, second - track.last, round(track.gap, 3),
                                       float(track.last)))

    def _forget(self) -> None:
        tracks = self.state.senders
        while len(tracks) > self.config.max_senders:
            del tracks[next(iter(tracks))]
            self.state.forgotten += 1
