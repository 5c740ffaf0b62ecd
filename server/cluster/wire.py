"""What crosses the bus: once a second per node, the partial aggregate of the lines it merged in
that second (the workers' mergeable `Partial`, sketches serialised) and the detector feeds it
consumed, with its event-time watermarks; and each fleet-wide anomaly event, under an id made from
what the event is about, so that every view computing it publishes one stored copy."""
from __future__ import annotations

import hashlib

import msgspec

from logtallyd.detect.events import Event

__all__ = ["EVENTS_STREAM", "EVENTS_SUBJECT", "NodeSecond", "SUBJECT_PREFIX", "STREAM", "decode", "encode",
           "event_id", "subject"]

STREAM = "LOGTALLY_AGG"
SUBJECT_PREFIX = "logtally.agg"
EVENTS_STREAM = "LOGTALLY_EVENTS"
EVENTS_SUBJECT = "logtally.events"


class NodeSecond(msgspec.Struct, array_like=True, frozen=True):
    # New fields go at the end, with a default: a message from an older node still decodes (and
    # an older node reading a newer message ignores the trailing fields).
    node: str
    boot: str  # one per process start, so `msg_id` stays unique across restarts
    seq: int  # 0, 1, 2... per boot
    tick: float  # the node's clock when it sealed the second
    newest: int | None  # the node's newest event second: its watermark
    received: int  # lines this message counts (parsed + rejected)
    partial: bytes  # `Partial.to_bytes()`; b"" for a second with no lines (a heartbeat)
    feed: bytes = b""  # the detector feeds consumed in the second, merged (`FeedData`); b"" = none
    # The node's own detector watermark at the seal: feeds it sends later for earlier seconds
    # are late there too. None: it has no data yet.
    detect_watermark: int | None = None

    @property
    def msg_id(self) -> str:
        """JetStream's `Nats-Msg-Id`: a publish retried after a lost ack is stored once."""
        return f"{self.node}.{self.boot}.{self.seq}"


# What, besides type, detector, key and ts, tells two events of a kind apart (never a figure:
# views that judged a late line differently still agree on the id).
_IDENTITY = {"zscore": "metric", "pattern": "pattern", "resolved": "of", "new_template": "template"}

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(NodeSecond)
_json = msgspec.json.Encoder()


def encode(message: NodeSecond) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> NodeSecond:
    return _decoder.decode(data)


def subject(node: str) -> str:
    return f"{SUBJECT_PREFIX}.{node}"


def event_id(event: Event) -> str:
    """The `Nats-Msg-Id` of a fleet event: the same on every view that finds it."""
    identity: list[object] = [event.type, event.detector, event.key, event.ts]
    extra = _IDENTITY.get(event.type)
    if extra is not None:
        identity.append(getattr(event, extra))
    return hashlib.sha256(_json.encode(identity)).hexdigest()[:32]
