"""The `[ingest]` and `[pipeline]` sections of config.toml: listeners, framing limits, batching.

Each limit carries its range on the field, so msgspec names the key of a bad value at decode
time; the few checks that involve two keys are in `logtallyd.daemon.config.check_config`.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

from logtallyd.ingest.framing import Delimiter

# SO_RCVBUF is a C int (setsockopt(2)).
_C_INT_MAX = 2**31 - 1


class TlsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    listen: str = ""  # HOST:PORT; RFC 5425 names 6514
    cert: str = ""
    key: str = ""
    # Set: a client must present a certificate this CA bundle signed (RFC 5425 §5.2 mutual auth).
    client_ca: str = ""
    # Subject CNs or DNS SANs let in; empty = any certificate `client_ca` signed.
    allowed_clients: list[str] = []
    # A connection still in its handshake this long is closed; until then it holds a connection slot.
    handshake_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0


class IngestConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tcp: str = "0.0.0.0:5140"  # "" disables
    udp: str = "0.0.0.0:5140"  # "" disables
    # Below 64 bytes even a bare RFC 5424 header is `oversize`; the framer reads octet counts of
    # up to 9 digits (RFC 6587 §3.4.1), far above the upper bound.
    max_message_bytes: Annotated[int, msgspec.Meta(ge=64, le=64 << 20)] = 65536
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000
    # Per source address (all its ports together): TCP/TLS connections, and lines per second
    # (0 = unlimited) with a burst allowance. Past the rate TCP reads pause, UDP datagrams are
    # rejected as `rate_limited`.
    max_connections_per_peer: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000
    peer_lines_per_s: Annotated[float, msgspec.Meta(ge=0, le=1e9)] = 0.0
    peer_burst_lines: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] = 10_000
    # Peers tracked at once beyond those with an open connection; the least recently seen go first.
    max_peers: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    peer_report: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 10  # rows of STATS `peers.top`
    # Host fields a sender's records claim that SENDERS keeps per sender (the rest are flagged).
    sender_hostnames: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8
    idle_timeout_s: Annotated[float, msgspec.Meta(ge=0)] = 300.0  # 0 = never
    udp_receive_buffer: Annotated[int, msgspec.Meta(ge=4096, le=_C_INT_MAX)] = 4 * 1024 * 1024
    # Bytes of a rejected frame kept for the rejects file and the `line_rejected` log.
    reject_sample_bytes: Annotated[int, msgspec.Meta(ge=16, le=65536)] = 256
    # What ends a non-transparent TCP frame (`logtallyd.ingest.framing.Delimiter`).
    delimiter: Delimiter = "learn"
    tls: TlsConfig = TlsConfig()


class PipelineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    workers: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 0  # 0 = one per CPU
    batch_lines: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 4000
    batch_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 30)] = 1 << 20
    batch_delay_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 50.0
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 4  # batches handed to the pool and not yet merged
    # Past this every ingest transport pauses reading.
    max_buffered_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 40)] = 32 << 20
    # On SIGTERM, how long open senders may finish; 0 = close them at once (what they already
    # sent is still drained and counted).
    shutdown_grace_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 10.0
    # Detectors pass a second once the newest event time seen is this far ahead of it (lines
    # arriving later than that for a second are counted as late by the detectors).
    event_lateness_s: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 10


class NatsSourceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[sources.nats]`: lines read from a JetStream stream (the connection is `[cluster]`'s)."""

    subjects: list[str] = []  # e.g. ["logs.>"]; empty = off
    # Created over `subjects` if absent; an existing stream is used as it is.
    stream: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "LOGTALLY_LINES"
    # The durable pull consumer, one per node ("" = "logtallyd-<node>"): redeliveries are
    # recognised by the sequences this node's snapshot counted, so two nodes must never share one.
    durable: Annotated[str, msgspec.Meta(pattern=r"^([A-Za-z0-9_-]{1,64})?$")] = ""
    fetch_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500  # messages per pull request
    # Messages fetched and not yet acknowledged: a message is acknowledged once the snapshot that
    # counts it is on disk, so this bounds ingest to about max_ack_pending per snapshot interval.
    max_ack_pending: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 100_000
    # Unacknowledged this long, JetStream delivers a message again (it must outlast a snapshot interval).
    ack_wait_s: Annotated[float, msgspec.Meta(ge=1, le=86_400)] = 120.0


class SourcesConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[sources]`: ingest that is pulled from a broker rather than sent to a listener."""

    nats: NatsSourceConfig = NatsSourceConfig()
