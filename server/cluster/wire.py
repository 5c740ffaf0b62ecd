"""What one node publishes once a second: the partial aggregate of the lines it merged in that
second (the workers' mergeable `Partial`, sketches serialised), with its event-time watermark."""
from __future__ import annotations

import msgspec

__all__ = ["NodeSecond", "SUBJECT_PREFIX", "STREAM", "decode", "encode", "subject"]

STREAM = "LOGTALLY_AGG"
SUBJECT_PREFIX = "logtally.agg"


class NodeSecond(msgspec.Struct, array_like=True, frozen=True):
    node: str
    boot: str  # one per process start, so `msg_id` stays unique across restarts
    seq: int  # 0, 1, 2... per boot
    tick: float  # the node's clock when it sealed the second
    newest: int | None  # the node's newest event second: its watermark
    received: int  # lines this message counts (parsed + rejected)
    partial: bytes  # `Partial.to_bytes()`; b"" for a second with no lines (a heartbeat)

    @property
    def msg_id(self) -> str:
        """JetStream's `Nats-Msg-Id`: a publish retried after a lost ack is stored once."""
        return f"{self.node}.{self.boot}.{self.seq}"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(NodeSecond)


def encode(message: NodeSecond) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> NodeSecond:
    return _decoder.decode(data)


def subject(node: str) -> str:
    return f"{SUBJECT_PREFIX}.{node}"
