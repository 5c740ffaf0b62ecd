"""Socket activation: take listening sockets from systemd (`LISTEN_FDS`) instead of binding them."""
# sd_listen_fds(3): systemd passes the sockets of `logtallyd.socket` as fds 3, 4, ... and names
# them with `FileDescriptorName=` in `LISTEN_FDNAMES`. With them the service binds nothing
# itself, so it needs no privilege even for port 514.
from __future__ import annotations

import os
import socket
import stat
from collections.abc import MutableMapping

import structlog

log = structlog.get_logger()

SD_LISTEN_FDS_START = 3  # sd-daemon.h
ENV_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
UNKNOWN_NAME = "unknown"  # what systemd itself reports for an fd without a name


def inherited_sockets(
    environ: MutableMapping[str, str] = os.environ, pid: int | None = None
) -> list[tuple[str, socket.socket]]:
    """The `(name, socket)` pairs systemd passed to this process; [] when not socket-activated.

    The three variables are always removed from `environ` (sd_listen_fds(3) with
    `unset_environment`), so worker processes and children never believe the fds are theirs.
    Each fd is made close-on-exec. Fds that are not sockets (a `ListenFIFO=`) are skipped
    with a warning.
    """
    values = {name: environ.pop(name, None) for name in ENV_VARS}
    if values["LISTEN_PID"] is None or values["LISTEN_FDS"] is None:
        return []
    try:
        listen_pid = int(values["LISTEN_PID"])
        count = int(values["LISTEN_FDS"])
    except ValueError:
        log.warning("listen_fds_invalid", listen_pid=values["LISTEN_PID"], listen_fds=values["LISTEN_FDS"])
        return []
    if listen_pid != (os.getpid() if pid is None else pid):
        # The variables were meant for another process (we were exec'd by the real recipient).
        return []
    names = values["LISTEN_FDNAMES"].split(":") if values["LISTEN_FDNAMES"] else []
    if len(names) != count:  # absent or inconsistent: systemd's own fallback name for each fd
        names = [UNKNOWN_NAME] * count
    sockets: list[tuple[str, socket.socket]] = []
    for offset, name in enumerate(names):
        fd = SD_LISTEN_FDS_START + offset
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            log.warning("listen_fd_missing", fd=fd, name=name, error=str(exc))
            continue
        if not stat.S_ISSOCK(mode):
            log.warning("listen_fd_not_a_socket", fd=fd, name=name)
            continue
        os.set_inheritable(fd, False)  # FD_CLOEXEC: children must not hold our listeners open
        # Given only `fileno`, Python asks the kernel for family, type and protocol.
        sockets.append((name, socket.socket(fileno=fd)))
    return sockets


def socket_kind(sock: socket.socket) -> str:
    """`tcp`, `udp`, `unix-stream`, `unix-dgram` or `other`, from the kernel's view of the socket."""
    sotype = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        return {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}.get(sotype, "other")
    if sock.family == socket.AF_UNIX:
        return {socket.SOCK_STREAM: "unix-stream", socket.SOCK_DGRAM: "unix-dgram"}.get(sotype, "other")
    return "other"


ROLES = {"ingest-tcp": "tcp", "ingest-udp": "udp", "ingest-tls": "tcp", "control": "tcp", "control-unix": "unix-stream",
         "http": "tcp"}
# Names that say "ingest" without the transport: one .socket unit names all its fds alike
# (systemd.socket(5) FileDescriptorName=), so logtallyd.socket holds TCP and UDP as "ingest";
# the unit's own name is systemd's default, "unknown" ours when names are missing.
GENERIC_INGEST = {"ingest", "logtallyd.socket", UNKNOWN_NAME}


def listener_role(name: str, sock: socket.socket) -> str | None:
    """The listener a passed socket serves (`ingest-tcp`, `ingest-udp`, `ingest-tls`, `control`,
    `control-unix`, `http`).

    None when the name is unknown or its socket type does not fit the role (log and ignore it).
    """
    kind = socket_kind(sock)
    if name in GENERIC_INGEST:
        return f"ingest-{kind}" if kind in ("tcp", "udp") else None
    if name == "control" and kind == "unix-stream":  # logtallyd-control.socket names its TCP and Unix fds alike
        return "control-unix"
    expected = ROLES.get(name)
    return name if expected == kind else None


def inherited_listeners(
    environ: MutableMapping[str, str] = os.environ, pid: int | None = None
) -> list[tuple[str, socket.socket]]:
    """`inherited_sockets` keyed by role (`ingest-tcp`, `ingest-udp`, `control`, ...), ready for `dict()`.

    A socket whose name or type fits no role is logged and closed (systemd keeps its own copy).
    """
    listeners: list[tuple[str, socket.socket]] = []
    for name, sock in inherited_sockets(environ, pid):
        role = listener_role(name, sock)
        if role is None:
            log.warning("listen_fd_ignored", name=name, kind=socket_kind(sock), fd=sock.fileno())
            sock.close()
            continue
        listeners.append((role, sock))
    return listeners


def is_listening(sock: socket.socket) -> bool:
    """True for a stream socket already in `listen()` (what `ListenStream=` hands over)."""
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
