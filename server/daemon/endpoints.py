"""The daemon's listening endpoints as one table: each kind names its config address and its
systemd socket role, and one opener serves it. Start-up, SIGHUP moves and shutdown all go
through the table, so adding a kind of listener is one row and one opener.
"""
from __future__ import annotations

import asyncio
import contextlib
import grp
import importlib
import os
import resource
import socket
import ssl
import stat
import sys
from typing import TYPE_CHECKING, Awaitable, Callable, NamedTuple, Protocol

import structlog

from logtallyd.daemon.config import Config, ConfigError, is_loopback, split_address
from logtallyd.daemon.tokenfile import read_token
from logtallyd.ingest.config import TlsConfig
from logtallyd.ingest.listeners import TcpIngest, TlsIngest, UdpIngest
from logtallyd.publish.access import Access
from logtallyd.publish.control import ControlConnection

if TYPE_CHECKING:
    from logtallyd.daemon.assembly import Parts

log = structlog.get_logger()


class Closeable(Protocol):
    def close(self) -> None: ...


class Kind(NamedTuple):
    name: str  # the key of `addresses` and of the `listening` log line
    role: str  # the socket role systemd passes it under (logtallyd.daemon.activation)
    address: Callable[[Config], str]  # "" = off


KINDS: tuple[Kind, ...] = (
    Kind("tcp", "ingest-tcp", lambda c: c.ingest.tcp),
    Kind("udp", "ingest-udp", lambda c: c.ingest.udp),
    Kind("tls", "ingest-tls", lambda c: c.ingest.tls.listen),
    Kind("control", "control", lambda c: c.control.listen),
    Kind("control_unix", "control-unix", lambda c: c.control.unix_socket),
    Kind("http", "http", lambda c: c.http.listen),
)
_BY_ROLE = {kind.role: kind for kind in KINDS}

# An opener binds `address` (or serves the inherited `sock`) and returns what to close to stop
# accepting, with the address it is bound to.
Opener = Callable[[str | None, socket.socket | None], Awaitable[tuple[Closeable, str]]]


class Endpoints:
    """The open listeners by kind. `pinned` kinds (addresses from the command line or from
    systemd) are left alone by SIGHUP."""

    def __init__(self, openers: dict[str, Opener], pinned: set[str] | None = None) -> None:
        self.openers = openers
        self.pinned: set[str] = set(pinned or ())
        self.addresses: dict[str, str] = {}
        self._open: dict[str, list[Closeable]] = {}

    async def open_all(self, config: Config, inherited: list[tuple[str, socket.socket]]) -> None:
        """Serve what systemd passed; bind the rest from the config. Under socket activation only
        the kinds in `[daemon] also_bind` are bound by the daemon itself."""
        passed = {_BY_ROLE.get(role, KINDS[0]).name for role, _ in inherited}
        for role, sock in inherited:
            await self._start(_BY_ROLE.get(role, KINDS[0]).name, None, sock)
        unbound = {kind.name for kind in KINDS if kind.name not in config.daemon.also_bind} if inherited else set()
        for kind in KINDS:
            address = kind.address(config)
            if address and kind.name not in unbound and kind.name not in self.addresses:
                await self._start(kind.name, address, None)
        self.pinned |= passed | unbound

    async def move(self, old: Config, new: Config) -> None:
        """SIGHUP: open the listeners the new config adds or moves, close the ones it drops.
        Connections already accepted stay open (closing a listening socket does not touch them)."""
        for kind in KINDS:
            before, after = kind.address(old), kind.address(new)
            if before == after or kind.name in self.pinned:
                continue
            self.close(kind.name)
            if not after:
                continue
            try:
                await self._start(kind.name, after, None)
            except (OSError, ssl.SSLError) as exc:
                log.error("listener_failed", listener=kind.name, address=after, error=str(exc))

    def close(self, *names: str) -> None:
        """Stop accepting on the named kinds (all when none is named)."""
        for name in names or tuple(self._open):
            for closeable in self._open.pop(name, []):
                closeable.close()
            self.addresses.pop(name, None)

    async def _start(self, name: str, address: str | None, sock: socket.socket | None) -> None:
        closeable, bound = await self.openers[name](address, sock)
        self._open.setdefault(name, []).append(closeable)
        self.addresses[name] = bound


# Descriptors the daemon holds besides connections: listeners, worker pipes, files, the loop's own.
_BASE_DESCRIPTORS = 64


def raise_descriptor_limit(config: Config) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit towards what the connection caps can take at once (never
    past the hard limit); (limit now, descriptors needed). Past the limit accept() fails and a
    sender's connection waits in the backlog, so a limit below the caps is logged at start."""
    needed = _BASE_DESCRIPTORS + config.ingest.max_connections + config.control.max_connections
    if config.control.unix_socket:
        needed += config.control.max_connections  # the Unix socket's own cap
    if config.http.listen:
        needed += config.http.max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return (soft if soft != resource.RLIM_INFINITY else needed), needed


def bound_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def openers(parts: Parts) -> dict[str, Opener]:
    """One opener per kind in `KINDS`, serving the daemon's parts."""
    loop = asyncio.get_running_loop()

    async def serve_stream(factory: Callable[[], asyncio.BaseProtocol], address: str | None,
                           sock: socket.socket | None, context: ssl.SSLContext | None = None
                           ) -> tuple[Closeable, str]:
        if sock is not None:
            server = await loop.create_server(factory, sock=sock, ssl=context, backlog=1024)
        else:
            assert address is not None
            host, port = split_address(address)
            server = await loop.create_server(factory, host, port, ssl=context, backlog=1024, reuse_address=True)
        return server, bound_address(server.sockets[0])

    async def tcp(address: str | None, sock: socket.socket | None) -> tuple[Closeable, str]:
        return await serve_stream(lambda: TcpIngest(parts.connections, parts.pipeline, "tcp"), address, sock)

    async def tls(address: str | None, sock: socket.socket | None) -> tuple[Closeable, str]:
        built = [parts.config.ingest.tls, tls_context(parts.config.ingest.tls)]  # for, context

        def factory() -> TlsIngest:
            # Served as plain TCP and wrapped by the protocol, so the handshake is counted and timed.
            tls = parts.config.ingest.tls
            if tls is not built[0]:
                # SIGHUP gave a new [ingest.tls]: read its files again (a renewed certificate, a new
                # client CA), once; if they do not load, keep serving with the old context.
                built[0] = tls
                try:
                    built[1] = tls_context(tls)
                    log.info("tls_reloaded", cert=tls.cert, client_ca=tls.client_ca or None)
                except ssl.SSLError as exc:
                    log.error("tls_reload_failed", error=str(exc), hint="the previous certificate and CA stay in use")
            return TlsIngest(parts.connections, parts.pipeline, built[1], tls.handshake_timeout_s,
                             frozenset(tls.allowed_clients))

        return await serve_stream(factory, address, sock)

    async def udp(address: str | None, sock: socket.socket | None) -> tuple[Closeable, str]:
        ingest = parts.config.ingest
        if sock is None:
            assert address is not None
            host, port = split_address(address)
            # No SO_REUSEADDR: on a datagram socket it would let a second daemon bind the same
            # port and silently take a share of the traffic.
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, port))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, ingest.udp_receive_buffer)
        except OSError:
            pass
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: UdpIngest(parts.pipeline, ingest.max_message_bytes, ingest.reject_sample_bytes,
                              parts.connections.peers), sock=sock
        )
        parts.udp.append(protocol)
        return transport, bound_address(sock)

    def control_factory(access: Access) -> Callable[[], ControlConnection]:
        def factory() -> ControlConnection:
            return ControlConnection(parts.commands, parts.hub, parts.control_connections,
                                     parts.config.control.max_connections, parts.tail_changed, access)

        return factory

    async def control(address: str | None, sock: socket.socket | None) -> tuple[Closeable, str]:
        # Checked on the bound sockets, so a name that resolves off loopback, or a socket systemd
        # passed, is held to the same rule as `control.listen`; nothing is accepted before.
        if sock is not None:
            refuse_open_control([sock])
            return await serve_stream(control_factory("anonymous"), None, sock)
        assert address is not None
        host, port = split_address(address)
        server = await loop.create_server(control_factory("anonymous"), host, port, backlog=1024,
                                          reuse_address=True, start_serving=False)
        try:
            refuse_open_control(list(server.sockets))
        except OSError:
            server.close()
            raise
        await server.start_serving()
        return server, bound_address(server.sockets[0])

    def refuse_open_control(socks: list[socket.socket]) -> None:
        if parts.commands.gate.token is not None:
            return
        for sock in socks:
            if not is_loopback(sock.getsockname()[0]):
                raise OSError(f"control listener {bound_address(sock)} is not on loopback and "
                              "control.token_file is not set")

    async def control_unix(path: str | None, sock: socket.socket | None) -> tuple[Closeable, str]:
        control = parts.config.control
        owned = sock is None  # a socket systemd passed is systemd's file to keep
        if sock is None:
            assert path is not None
            sock = bind_unix(path, control.unix_mode, control.unix_group)
        name = sock.getsockname()
        # The file is ours to remove (UnixListener) or systemd's to keep, never the loop's.
        keep = {"cleanup_socket": False} if sys.version_info >= (3, 13) else {}
        server = await loop.create_unix_server(control_factory("unix"), sock=sock, backlog=1024, **keep)
        where = name if isinstance(name, str) else repr(name)
        return (UnixListener(server, where) if owned else server), where

    async def http(address: str | None, sock: socket.socket | None) -> tuple[Closeable, str]:
        if sock is None:
            assert address is not None
            host, port = split_address(address)
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(1024)
            except OSError:
                sock.close()
                raise
        http = parts.config.http
        try:
            token = read_token(http.token_file, "http.token_file")
            if token is None and not http.allow_unauthenticated and not is_loopback(sock.getsockname()[0]):
                raise OSError(f"http listener {bound_address(sock)} is not on loopback and http.token_file is not "
                              "set (http.allow_unauthenticated = true serves it anyway)")
        except ConfigError as exc:  # an OSError, as a bind failure is: SIGHUP logs it and goes on
            sock.close()
            raise OSError(str(exc)) from None
        except OSError:
            sock.close()
            raise
        auth = "bearer_token" if token else "loopback" if is_loopback(sock.getsockname()[0]) else "unauthenticated"
        (log.warning if auth == "unauthenticated" else log.info)("http_auth", address=bound_address(sock), auth=auth,
                                                                 authenticated=token is not None)
        parts.http_token = token

        async def serve(listening: socket.socket) -> asyncio.AbstractServer:
            # At the first connection. FastAPI, pydantic and uvicorn take some 0.2 s to import:
            # in a thread, so the loop goes on serving the other listeners meanwhile.
            await asyncio.to_thread(importlib.import_module, "logtallyd.publish.api")
            from logtallyd.publish.api import build_api
            from logtallyd.publish.httpserver import serve_http

            app = build_api(parts.commands, parts.hub, parts.metrics, lambda: parts.ready, lambda: parts.http_token,
                            parts.tail_changed)
            return await serve_http(app, parts.http_connections, listening)

        return DeferredServer("http", sock, serve), bound_address(sock)

    return {"tcp": tcp, "udp": udp, "tls": tls, "control": control, "control_unix": control_unix, "http": http}


def bind_unix(path: str, mode: int, group: str) -> socket.socket:
    """A stream socket bound at `path` with `mode` and `group` set, not yet listening: nobody can
    connect before its permissions are right. A socket file no daemon answers on is replaced;
    a live one, or anything that is not a socket, is an error."""
    clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        gid = -1
        if group:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise OSError(f"control.unix_group = {group!r}: no such group") from None
        os.chown(path, -1, gid)
        os.chmod(path, mode)
    except OSError:
        sock.close()
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        raise
    return sock


def clear_stale_socket(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(f"control.unix_socket = {path!r} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:  # left by a daemon that died: nobody listens
        os.unlink(path)
        return
    except OSError as exc:
        raise OSError(f"control.unix_socket = {path!r}: cannot probe the existing socket: {exc}") from None
    finally:
        probe.close()
    raise OSError(f"control.unix_socket = {path!r}: another process is listening on it")


class DeferredServer:
    """A listener whose socket listens now and whose server is built when the first client
    connects: that client waits in the socket's backlog, as it would behind a busy accept loop,
    and is served once `serve` returns. A daemon whose HTTP API nobody asks then never holds its
    stack (FastAPI, pydantic, uvicorn: some 20 MiB and 0.2 s to import). A failed build is
    logged and the socket closed; closing before the build is done cancels it."""

    def __init__(self, name: str, sock: socket.socket,
                 serve: Callable[[socket.socket], Awaitable[asyncio.AbstractServer]]) -> None:
        self.name = name
        self.sock = sock
        self.serve = serve
        self.where = bound_address(sock)
        self.server: asyncio.AbstractServer | None = None
        self.task: asyncio.Task[None] | None = None
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._connecting)  # readable: a connection waits

    def _connecting(self) -> None:
        self.loop.remove_reader(self.sock.fileno())  # the server built now watches the socket itself
        self.task = self.loop.create_task(self._serve())

    async def _serve(self) -> None:
        try:
            self.server = await self.serve(self.sock)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the other listeners go on; this one is gone, as after a failed bind
            log.error("listener_failed", listener=self.name, address=self.where, error=repr(exc))
            self.sock.close()

    def close(self) -> None:
        if self.task is None:
            if self.sock.fileno() >= 0:
                self.loop.remove_reader(self.sock.fileno())
        else:
            self.task.cancel()
        if self.server is not None:
            self.server.close()  # closes the listening socket too
        else:
            self.sock.close()


class UnixListener:
    """A Unix-socket server that removes its socket file when closed, unless another process has
    replaced the file since (a second daemon's socket must not vanish under it)."""

    def __init__(self, server: asyncio.AbstractServer, path: str) -> None:
        self.server = server
        self.path = path
        info = os.lstat(path)
        self.identity = (info.st_dev, info.st_ino)

    def close(self) -> None:
        self.server.close()
        with contextlib.suppress(OSError):
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self.identity:
                os.unlink(self.path)


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """A server context for RFC 5425 ingest, requiring a client certificate signed by
    `client_ca` when that is set; errors name the key and file that failed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    files = [("ingest.tls.cert", tls.cert), ("ingest.tls.key", tls.key)]
    if tls.client_ca:
        files.append(("ingest.tls.client_ca", tls.client_ca))
    for key, path in files:
        if not os.path.isfile(path):
            raise ssl.SSLError(f"{key} = {path!r}: no such file")
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (ssl.SSLError, OSError) as exc:
        raise ssl.SSLError(
            f"ingest.tls.cert = {tls.cert!r}, ingest.tls.key = {tls.key!r}: not a PEM certificate and "
            f"matching private key ({exc})"
        ) from exc
    if tls.client_ca:
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise ssl.SSLError(f"ingest.tls.client_ca = {tls.client_ca!r}: not a PEM CA bundle ({exc})") from exc
        context.verify_mode = ssl.CERT_REQUIRED  # RFC 5425 §5.2: the server authenticates the client
    return context
