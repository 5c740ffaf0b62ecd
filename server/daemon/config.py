"""The daemon's configuration: `config.toml` decoded by msgspec into typed Structs."""
# Every limit carries its range on its field (`Annotated[int, msgspec.Meta(ge=...)]`), so a
# wrong type, a value out of range or an unknown key fails at start (and on SIGHUP) with a
# message that names the key, e.g. `Expected `int` >= 1 - at `$.control.max_connections``; the
# checks that involve more than one key are all in `check_config`. Each stage's sections live
# with the stage.
from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from logtallyd.alerts.config import AlertRoute, check_routes
from logtallyd.cluster.config import ClusterConfig
from logtallyd.daemon.logsetup import LogConfig
from logtallyd.detect.config import DetectConfig
from logtallyd.ingest.config import IngestConfig, NatsSourceConfig, PipelineConfig, SourcesConfig, TlsConfig
from logtallyd.parsing.options import ParseOptions
from logtallyd.persist.config import ArchiveConfig, HistoryConfig, RejectsConfig, StateConfig
from logtallyd.primes.config import PrimeConfig
from logtallyd.publish.config import ControlConfig, HttpConfig
from logtallyd.stats.config import StatsConfig

__all__ = [
    "AlertRoute", "ArchiveConfig", "ClusterConfig", "Config", "ConfigError", "ControlConfig", "DaemonConfig", "DetectConfig",
    "HttpConfig", "IngestConfig", "ListenerConfig", "LogConfig", "NatsSourceConfig", "ParseOptions", "PipelineConfig",
    "PrimeConfig", "RejectsConfig", "SourcesConfig", "StateConfig", "StatsConfig", "TlsConfig", "check_config",
    "decode_config", "is_loopback", "load_config", "split_address",
]


class DaemonConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[daemon]`: the server's own periodic work."""

    # Idle sweep, stalled subscribers, detector watermark, `SUBSCRIBE stats` and snapshot checks
    # run on this tick, so it bounds how late any of them can be.
    tick_interval_s: Annotated[float, msgspec.Meta(ge=0.01, le=1.0)] = 0.1
    # systemd STATUS=, the `log_suppressed` summaries and the archive's age rotation.
    status_interval_s: Annotated[float, msgspec.Meta(ge=0.1, le=3600)] = 5.0
    # Under socket activation the daemon serves only the sockets systemd passed; the listeners
    # named here are bound from this file as well.
    also_bind: list[Literal["tcp", "udp", "tls", "control", "control_unix", "http"]] = []


class ListenerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[listeners.tcp]`, `[listeners.udp]`, `[listeners.tls]`: what differs for one listener."""

    parse: ParseOptions | None = None  # instead of `[parse]` for this listener's lines


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    daemon: DaemonConfig = DaemonConfig()
    ingest: IngestConfig = IngestConfig()
    pipeline: PipelineConfig = PipelineConfig()
    control: ControlConfig = ControlConfig()
    rejects: RejectsConfig = RejectsConfig()
    parse: ParseOptions = ParseOptions()
    listeners: dict[Literal["tcp", "udp", "tls", "nats"], ListenerConfig] = {}
    sources: SourcesConfig = SourcesConfig()
    stats: StatsConfig = StatsConfig()
    detect: DetectConfig = DetectConfig()
    primes: PrimeConfig = PrimeConfig()
    state: StateConfig = StateConfig()
    archive: ArchiveConfig = ArchiveConfig()
    history: HistoryConfig = HistoryConfig()
    http: HttpConfig = HttpConfig()
    cluster: ClusterConfig = ClusterConfig()
    log: LogConfig = LogConfig()
    alerts: list[AlertRoute] = []  # `[[alerts]]` blocks, one per route

    def listener_parse(self) -> dict[str, ParseOptions]:
        """Parse options of the listeners that have their own."""
        return {name: lc.parse for name, lc in self.listeners.items() if lc.parse is not None}


class ConfigError(Exception):
    """A config file the daemon refuses to start (or reload) with; the message names the key."""


def load_config(path: str | Path | None) -> Config:
    """Read and check a config file; no path means the built-in defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return decode_config(raw, str(path))


def decode_config(raw: dict, source: str = "config") -> Config:
    """Decode a parsed TOML tree: types and ranges by msgspec, then `check_config`."""
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    problem = check_config(config)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return config


def check_config(config: Config) -> str | None:
    """What no single field's range can say: the checks that read two or more keys (or parse one).

    The first problem found, as a message that names the keys; None when the config is sound.
    """
    tls = config.ingest.tls
    if tls.listen and not (tls.cert and tls.key):
        return "ingest.tls.listen needs ingest.tls.cert and ingest.tls.key"
    if tls.allowed_clients and not tls.client_ca:
        return "ingest.tls.allowed_clients needs ingest.tls.client_ca"
    for key, value in (
        ("ingest.tcp", config.ingest.tcp),
        ("ingest.udp", config.ingest.udp),
        ("ingest.tls.listen", tls.listen),
        ("control.listen", config.control.listen),
        ("http.listen", config.http.listen),
    ):
        if value:
            try:
                split_address(value)
            except ValueError as exc:
                return f"{key}: {exc}"
    control = config.control
    if control.listen and not control.token_file and not is_loopback(split_address(control.listen)[0]):
        return (f"control.listen = {control.listen!r} is not a loopback address: anyone who can reach it could "
                "read every line (SUBSCRIBE tail) and start jobs; set control.token_file, or listen on 127.0.0.1")
    if len(os.fsencode(control.unix_socket)) > UNIX_PATH_MAX:
        return f"control.unix_socket is longer than {UNIX_PATH_MAX} bytes (sun_path)"
    if not control.min_interval_s <= control.default_interval_s <= control.max_interval_s:
        return (
            "control.default_interval_s must be within control.min_interval_s..control.max_interval_s"
            f" (got {control.default_interval_s} not in {control.min_interval_s}..{control.max_interval_s})"
        )
    daemon = config.daemon
    if daemon.status_interval_s < daemon.tick_interval_s:
        return (
            f"daemon.status_interval_s must be >= daemon.tick_interval_s"
            f" (got {daemon.status_interval_s} < {daemon.tick_interval_s})"
        )
    detect = config.detect
    spike = detect.spike
    if spike.resolve_below > spike.threshold:
        return f"detect.spike.resolve_below must be in 1..spike.threshold (got {spike.resolve_below})"
    if spike.overall_resolve_below > spike.overall_threshold:
        return (
            "detect.spike.overall_resolve_below must be in 1..spike.overall_threshold"
            f" (got {spike.overall_resolve_below})"
        )
    longest = max(spike.window_s, detect.suspicious.window_s)
    if detect.max_empty_walk_s < longest:
        return f"detect.max_empty_walk_s must cover the longest window ({longest} s)"
    names: set[str] = set()
    for i, pattern in enumerate(detect.patterns):
        where = f"detect.patterns[{i}]"
        if pattern.name in names:
            return f"{where}.name must be unique (got {pattern.name!r})"
        names.add(pattern.name)
        for j, step in enumerate(pattern.steps):
            if step == "re:":
                return f"{where}.steps[{j}] must not be empty"
            if step.startswith("re:"):
                try:
                    re.compile(step[3:])
                except re.error as exc:
                    return f"{where}.steps[{j}]: invalid regular expression: {exc}"
    if config.cluster.publish == "durable" and config.state.directory == "":
        return 'cluster.publish = "durable" needs [state] (a second goes out once a snapshot counts it)'
    if config.cluster.publish == "durable" and config.cluster.buffer_seconds <= 2 * config.state.snapshot_interval_s:
        # Seconds wait for the snapshot that counts them: the buffer must outlast two intervals
        # (one being filled, one being written), or held seconds are dropped before they may go.
        return (f'cluster.buffer_seconds must exceed twice state.snapshot_interval_s with publish = "durable"'
                f" (got {config.cluster.buffer_seconds} <= 2 * {config.state.snapshot_interval_s})")
    source = config.sources.nats
    if source.subjects and not config.cluster.nats:
        return "sources.nats.subjects needs cluster.nats (the NATS server to read them from)"
    if source.subjects and config.state.directory != "" and source.ack_wait_s <= 2 * config.state.snapshot_interval_s:
        # A message is acknowledged after the snapshot that counts it: before that, JetStream
        # would deliver it again (skipped as counted, but pulled twice).
        return (f"sources.nats.ack_wait_s must exceed twice state.snapshot_interval_s"
                f" (got {source.ack_wait_s} <= 2 * {config.state.snapshot_interval_s})")
    return check_routes(config.alerts)


UNIX_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes on Linux, one for the NUL


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; a host that is no IP address is not trusted."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[v6]:PORT` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)
