"""`[cluster]`: where the NATS server is, who this node is, and how to log in to it."""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["ClusterConfig"]

_NODE = Annotated[str, msgspec.Meta(pattern=r"^([A-Za-z0-9_-]{1,64})?$")]


class ClusterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The NATS connection's options, as nats-py supports them; `nats = ""` leaves clustering off."""

    nats: str = ""  # "nats://host:4222", or several joined by commas; "" = off
    # The node's name in subjects and CLUSTER answers (a NATS subject token: no dots or spaces);
    # "" = the host name, cut to what a token allows.
    node: _NODE = ""
    credentials_file: str = ""  # a NATS .creds file (JWT + nkey seed)
    nkeys_seed_file: str = ""  # an nkey seed file
    token_file: str = ""  # first line: the NATS auth token
    user: str = ""
    password_file: str = ""  # first line: the password for `user`
    tls_ca: str = ""  # CA bundle that signs the NATS server's certificate; set it (or tls_cert) for tls://
    tls_cert: str = ""  # client certificate, when the NATS server asks for one
    tls_key: str = ""
    tls_hostname: str = ""  # the name to check the server's certificate against; "" = the URL's host
    connect_timeout_s: Annotated[float, msgspec.Meta(ge=0.1, le=60)] = 2.0
    reconnect_wait_s: Annotated[float, msgspec.Meta(ge=0.1, le=60)] = 2.0
    # Bytes nats-py keeps for publishes made while disconnected (its `pending_size`).
    pending_bytes: Annotated[int, msgspec.Meta(ge=65536, le=1073741824)] = 2097152
    # A node silent this long (by its own published clock) is down and leaves the watermark.
    down_after_s: Annotated[float, msgspec.Meta(ge=1, le=86400)] = 15.0
    # Sealed seconds held while NATS is unreachable; beyond, the oldest are dropped and counted.
    buffer_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 900
    # A sealed second larger than this goes out as several messages: keep it under the NATS
    # server's `max_payload` (1 MB unless configured) less a few KB for headers.
    max_message_bytes: Annotated[int, msgspec.Meta(ge=65536, le=67108864)] = 1000000
    # Fleet events found by this view and waiting to be published while NATS is unreachable;
    # beyond, the oldest are dropped and counted (another view usually publishes them).
    events_queue: Annotated[int, msgspec.Meta(ge=1, le=1000000)] = 1000
    # Fleet events the LOGTALLY_EVENTS stream keeps (its max_msgs), and event ids a view
    # remembers so that it never republishes one the stream holds.
    max_events: Annotated[int, msgspec.Meta(ge=1, le=10000000)] = 100000
    # "live": each sealed second goes out at once (the fleet view is current; after a kill -9 the
    # lines a restart counts again from the NATS source may be counted twice by the fleet).
    # "durable": a second goes out once the snapshot counting its lines is written, so the fleet
    # counts every line exactly once across kill -9, `snapshot_interval_s` later.
    publish: Literal["live", "durable"] = "live"
    # Whether this node consumes the stream and answers the `cluster` commands; a publish-only node
    # spends nothing on the fleet merge (see README "Cluster", sizing).
    view: bool = True
    # `analyze --nats`: a batch a node took and did not answer within this long (the node died or
    # hangs) goes to another node.
    analyze_ack_wait_s: Annotated[float, msgspec.Meta(ge=1, le=86400)] = 30.0
    # `analyze --nats`: batches no node took within this long are dropped from the work queue
    # (their `analyze` has given up long before).
    analyze_max_age_s: Annotated[float, msgspec.Meta(ge=60, le=604800)] = 3600.0
