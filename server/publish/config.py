"""The `[control]` and `[http]` sections of config.toml: the control port and the HTTP API.

Each limit carries its range on the field, so msgspec names the key of a bad value at decode
time; the interval bounds, which involve three keys, are checked in
`logtallyd.daemon.config.check_config`.
"""
from __future__ import annotations

from typing import Annotated

import msgspec


class ControlConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    listen: str = "127.0.0.1:5141"
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 200
    # Messages; when full the oldest are dropped ("lagged").
    subscriber_queue: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000
    # A subscriber that reads nothing this long is disconnected.
    stalled_subscriber_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 30.0
    default_interval_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 1.0  # `SUBSCRIBE stats`
    min_interval_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 0.05  # shortest `interval=S`
    max_interval_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 3600.0  # longest `interval=S`
    # A longer command line is refused; below 64 bytes `SUBSCRIBE tail ...` would not fit.
    max_command_bytes: Annotated[int, msgspec.Meta(ge=64, le=1 << 20)] = 4096
    max_top_n: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000  # the largest n `TOP` answers
    default_events: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20  # `EVENTS` without n
    # Commands read from one connection and not yet answered; past it that client's reads pause,
    # so a client that pipelines without reading its answers holds only its own socket buffers.
    max_pending_commands: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 64
    # Access control (`logtallyd.publish.access`): a Unix socket whose file permissions decide who
    # may connect, and a token that TCP connections present with `AUTH` for the privileged commands.
    unix_socket: str = ""  # e.g. "/run/logtally/control.sock"; "" = off
    unix_mode: Annotated[int, msgspec.Meta(ge=0, le=0o777)] = 0o660
    unix_group: str = ""  # group of the socket file; "" = the daemon's own group
    token_file: str = ""  # one line, not readable by other users; "" = no AUTH over TCP
    # Failed AUTHs from one source address in any 60 s; past it that address's AUTHs are refused
    # unchecked until its oldest failure ages out.
    auth_failures_per_minute: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10


class HttpConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    listen: str = "127.0.0.1:5142"  # "" = off; off loopback it needs `token_file` (or allow_unauthenticated)
    # A request head longer than this is answered 400; 256 bytes hold any `GET /metrics` a
    # scraper sends (RFC 9112 §2.3 leaves the limit to the server).
    max_head_bytes: Annotated[int, msgspec.Meta(ge=256, le=1 << 20)] = 8192
    # Open connections; more are closed at once, so idle scrapers cannot take the daemon's file
    # descriptors from ingest.
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 64
    # A connection that has not sent its whole request head this long (since it opened or was
    # last answered) is closed.
    idle_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    # `Authorization: Bearer <token>` for every path but /healthz, /readyz and the dashboard (`/`, `/static/...`); one line, not
    # readable by other users (as `control.token_file`); read when the listener opens.
    token_file: str = ""
    # A `listen` off loopback needs `token_file`, or this set to true by an operator who means it.
    allow_unauthenticated: bool = False
