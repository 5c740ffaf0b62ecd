"""One NATS connection made from `[cluster]`: credentials read from files, reconnects forever, outages logged."""
from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from logtallyd.cluster.config import ClusterConfig

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["connect", "connect_options", "node_name"]

log = structlog.get_logger()


def node_name(config: ClusterConfig) -> str:
    """`[cluster] node`, else the host name made a valid subject token."""
    if config.node:
        return config.node
    host = socket.gethostname().split(".")[0]
    token = "".join(c if c.isalnum() or c in "_-" else "_" for c in host)[:64]
    return token or "node"


def _first_line(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").splitlines()[0].strip()


def connect_options(config: ClusterConfig, name: str) -> dict[str, Any]:
    """nats-py `connect()` keyword arguments; reading a named secret file that fails raises OSError."""
    options: dict[str, Any] = {
        "servers": [s.strip() for s in config.nats.split(",") if s.strip()],
        "name": f"logtallyd-{name}",
        "connect_timeout": config.connect_timeout_s,
        "reconnect_time_wait": config.reconnect_wait_s,
        # A node outlives any NATS outage: it serves its local view and keeps trying.
        "max_reconnect_attempts": -1,
        "pending_size": config.pending_bytes,
    }
    if config.credentials_file:
        options["user_credentials"] = config.credentials_file
    if config.nkeys_seed_file:
        options["nkeys_seed"] = config.nkeys_seed_file
    if config.token_file:
        options["token"] = _first_line(config.token_file)
    if config.user:
        options["user"] = config.user
        if config.password_file:
            options["password"] = _first_line(config.password_file)
    if config.tls_ca or config.tls_cert:
        context = ssl.create_default_context(cafile=config.tls_ca or None)
        if config.tls_cert:
            context.load_cert_chain(config.tls_cert, config.tls_key or None)
        options["tls"] = context
        if config.tls_hostname:
            options["tls_hostname"] = config.tls_hostname
    return options


async def connect(config: ClusterConfig, name: str, *, retry: bool = True) -> Client:
    """A connected client. With `retry` (a node), nats-py's own loop keeps trying every
    `reconnect_wait_s`, before the first connection as after a lost one, so await this in a task: a
    node starts and serves its local view whether or not NATS is up. Without it (a one-shot command)
    a second failed attempt raises."""
    import nats

    failures = 0

    async def disconnected() -> None:
        log.warning("nats_disconnected", servers=config.nats)

    async def reconnected() -> None:
        log.info("nats_reconnected", servers=config.nats)

    async def error(exc: Exception) -> None:
        # Called once per failed attempt: an outage of hours must not write a line every 2 s.
        nonlocal failures
        if failures % 30 == 0:
            log.warning("nats_error", servers=config.nats, error=str(exc) or type(exc).__name__,
                        attempts=failures + 1)
        failures += 1

    options = connect_options(config, name)
    if not retry:
        options["max_reconnect_attempts"] = 1  # nats-py reads 0 as "forever"; 1 = two attempts
    return await nats.connect(**options, disconnected_cb=disconnected, reconnected_cb=reconnected,
                              error_cb=error, allow_reconnect=True)
