"""Which fleet events the events stream holds, sans-I/O. Events the fleet detectors find wait in
a bounded queue to be published, unless the stream holds their id already; the events read back
from the stream (every view's, once each) answer `EVENTS cluster`."""
from __future__ import annotations

import collections

import msgspec

from logtallyd.cluster.wire import event_id
from logtallyd.detect.events import Event, decode_event, encode_event

__all__ = ["EventLedger", "LedgerFigures", "Outgoing"]


class Outgoing(msgspec.Struct, frozen=True):
    id: str  # `event_id(event)`, sent as `Nats-Msg-Id`
    event: Event
    data: bytes  # the event's JSON


class LedgerFigures(msgspec.Struct, frozen=True):
    found: int  # events this view's fleet detectors found
    published: int  # stored by this view's publish
    duplicates: int  # the stream had the id already: another view published it first
    skipped: int  # not sent: the stream was seen holding the id
    dropped: int  # over `[cluster] events_queue` while the stream was out of reach
    queued: int  # waiting to be published
    stored: int  # events read from the stream, each id once
    repeated: int  # an id read from the stream a second time (shown once)
    decode_errors: int  # stream messages that are not an event


class EventLedger:
    def __init__(self, keep_events: int, max_ids: int, queue_size: int) -> None:
        self.max_ids = max_ids
        self.queue_size = queue_size
        self.ids: dict[str, None] = {}  # ids the stream holds, oldest first (a bounded ordered set)
        self._recent: collections.deque[Event] = collections.deque(maxlen=keep_events)
        self.queue: collections.deque[Outgoing] = collections.deque()
        self.found_total = self.published = self.duplicates = self.skipped = self.dropped = 0
        self.stored_total = self.repeated = self.decode_errors = 0

    def found(self, events: list[Event]) -> None:
        """Events the fleet detectors just found, queued unless the stream holds them; past
        `queue_size` queued, the oldest are dropped and counted."""
        for event in events:
            self.found_total += 1
            ident = event_id(event)
            if ident in self.ids:
                self.skipped += 1
                continue
            self.queue.append(Outgoing(ident, event, encode_event(event)))
        while len(self.queue) > self.queue_size:
            self.queue.popleft()
            self.dropped += 1

    def head(self) -> Outgoing | None:
        """The oldest event still to publish (ones the stream came to hold meanwhile are skipped)."""
        while self.queue and self.queue[0].id in self.ids:
            self.queue.popleft()
            self.skipped += 1
        return self.queue[0] if self.queue else None

    def sent(self, outgoing: Outgoing, duplicate: bool) -> None:
        """The stream acknowledged `outgoing` (a `head()`); `duplicate`: it held the id already."""
        if self.queue and self.queue[0] is outgoing:
            self.queue.popleft()
        else:  # dropped while its publish was in flight, yet stored: not lost after all
            self.dropped -= 1
        if duplicate:
            self.duplicates += 1
        else:
            self.published += 1

    def stored(self, ident: str | None, data: bytes) -> Event | None:
        """An event read from the stream, under its `Nats-Msg-Id` (None: published without one);
        returns it unless it is unreadable or already read."""
        try:
            event = decode_event(data)
        except msgspec.DecodeError:
            self.decode_errors += 1
            return None
        ident = ident or event_id(event)
        if ident in self.ids:
            self.repeated += 1
            return None
        self.ids[ident] = None
        while len(self.ids) > self.max_ids:
            del self.ids[next(iter(self.ids))]
        self.stored_total += 1
        self._recent.append(event)
        return event

    def recent(self, n: int) -> list[Event]:
        """The last `n` events the stream holds, oldest first."""
        return list(self._recent)[-n:] if n > 0 else []

    def reconfigure(self, keep_events: int) -> None:
        self._recent = collections.deque(self._recent, maxlen=keep_events)

    def figures(self) -> LedgerFigures:
        return LedgerFigures(self.found_total, self.published, self.duplicates, self.skipped, self.dropped,
                             len(self.queue), self.stored_total, self.repeated, self.decode_errors)
