"""The sd_notify(3) datagram protocol: how the daemon tells systemd READY/STATUS/WATCHDOG/STOPPING.

No library: one `AF_UNIX`/`SOCK_DGRAM` datagram of newline-separated `KEY=VALUE` lines to
`$NOTIFY_SOCKET`. Outside systemd (the variable unset) every call is a silent no-op, so the
server can notify unconditionally.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger()

# The states the daemon reports (sd_notify(3), "Well-known assignments").
READY = "READY=1"
STOPPING = "STOPPING=1"
WATCHDOG = "WATCHDOG=1"


def status(text: str) -> str:
    """A `STATUS=` line (free text shown by `systemctl status`); newlines would split the line."""
    return "STATUS=" + text.replace("\n", " ")


def reloading_lines(monotonic_ns: int | None = None) -> tuple[str, str]:
    """`RELOADING=1` plus the `MONOTONIC_USEC=` systemd >= 253 expects with it (sd_notify(3))."""
    ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC) if monotonic_ns is None else monotonic_ns
    return ("RELOADING=1", f"MONOTONIC_USEC={ns // 1000}")


def socket_address(value: str) -> str | bytes | None:
    """Map `$NOTIFY_SOCKET` to a `sendto` address; `@name` is an abstract socket (leading NUL)."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        # unix(7): an abstract address starts with a NUL byte and is not a filesystem path.
        return b"\0" + value[1:].encode()
    return None  # e.g. systemd 254's "vsock:CID:PORT": not supported here


def notify(*lines: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send `lines` as one datagram to `$NOTIFY_SOCKET`; True when sent, False when unset or failed.

    Never raises: a daemon must not die because its supervisor went away; failures are logged.
    """
    value = environ.get("NOTIFY_SOCKET")
    if not value or not lines:
        return False
    address = socket_address(value)
    if address is None:
        log.warning("sd_notify_unsupported_socket", notify_socket=value)
        return False
    payload = "\n".join(line.replace("\n", " ") for line in lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, address)
    except OSError as exc:
        log.warning("sd_notify_failed", notify_socket=value, error=str(exc))
        return False
    return True


def watchdog_interval_s(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, or None when no watchdog is set.

    sd_watchdog_enabled(3): `$WATCHDOG_PID`, when present, must name this process, otherwise
    the watchdog belongs to someone else (e.g. a parent that exec'd us without clearing it).
    """
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    wpid = environ.get("WATCHDOG_PID")
    try:
        timeout = int(usec)
        if wpid is not None and int(wpid) != (os.getpid() if pid is None else pid):
            return None
    except ValueError:
        return None
    if timeout <= 0:
        return None
    return timeout / 2 / 1_000_000
