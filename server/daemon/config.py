"""The daemon's configuration: `config.toml` decoded by msgspec into typed Structs.

A wrong type or an unknown key fails at start (and on SIGHUP) with a message that names the key,
e.g. `config.toml: Expected `int`, got `str` - at `$.ingest.max_message_bytes``.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import msgspec

from server.persist.archive import ArchiveConfig
from server.detect.config import DetectConfig, check_detect
from server.publish.http import HttpConfig
from server.daemon.logsetup import LogConfig
from server.parsing import ParseOptions
from server.primes.jobs import PrimeConfig
from server.persist.state import StateConfig
from server.stats.windows import StatsConfig


class Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class TlsConfig(Strict):
    listen: str = ""  # HOST:PORT; RFC 5425 names 6514
    cert: str = ""
    key: str = ""


class IngestConfig(Strict):
    tcp: str = "0.0.0.0:5140"  # "" disables
    udp: str = "0.0.0.0:5140"  # "" disables
    max_message_bytes: int = 65536
    max_connections: int = 1000
    idle_timeout_s: float = 300.0
    udp_receive_buffer: int = 4 * 1024 * 1024
    tls: TlsConfig = TlsConfig()


class PipelineConfig(Strict):
    workers: int = 0  # 0 = one per CPU
    batch_lines: int = 4000
    batch_bytes: int = 1 << 20
    batch_delay_ms: float = 50.0
    max_in_flight: int = 4  # batches handed to the pool and not yet merged
    max_buffered_bytes: int = 32 << 20  # past this every ingest transport pauses reading
    shutdown_grace_s: float = 10.0  # on SIGTERM, how long open senders may finish
    # Detectors pass a second once the newest event time seen is this far ahead of it (lines
    # arriving later than that for a second are counted as late by the detectors).
    event_lateness_s: int = 10


class ControlConfig(Strict):
    listen: str = "127.0.0.1:5141"
    max_connections: int = 200
    subscriber_queue: int = 1000  # messages; when full the oldest are dropped ("lagged")
    stalled_subscriber_s: float = 30.0  # a subscriber that reads nothing this long is disconnected
    default_interval_s: float = 1.0  # STATS snapshot interval for `SUBSCRIBE stats`
    min_interval_s: float = 0.05  # the shortest `SUBSCRIBE ... interval=S` accepted
    max_interval_s: float = 3600.0  # the longest `SUBSCRIBE ... interval=S` accepted
    max_command_bytes: int = 4096  # a longer command line is refused
    max_top_n: int = 1000  # the largest n `TOP` answers
    default_events: int = 20  # `EVENTS` without n


class RejectsConfig(Strict):
    path: str = "rejects.log"  # "" disables the file (counts stay in STATS)
    max_bytes: int = 64 << 20  # then rotated once to PATH.1


class ListenerConfig(Strict):
    """`[listeners.tcp]`, `[listeners.udp]`, `[listeners.tls]`: what differs for one listener."""

    parse: ParseOptions | None = None  # instead of `[parse]` for this listener's lines


class Config(Strict):
    ingest: IngestConfig = IngestConfig()
    pipeline: PipelineConfig = PipelineConfig()
    control: ControlConfig = ControlConfig()
    rejects: RejectsConfig = RejectsConfig()
    parse: ParseOptions = ParseOptions()
    listeners: dict[Literal["tcp", "udp", "tls"], ListenerConfig] = {}
    stats: StatsConfig = StatsConfig()
    detect: DetectConfig = DetectConfig()
    primes: PrimeConfig = PrimeConfig()
    state: StateConfig = StateConfig()
    archive: ArchiveConfig = ArchiveConfig()
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()


    def listener_parse(self) -> dict[str, ParseOptions]:
        """Parse options of the listeners that have their own."""
        return {name: lc.parse for name, lc in self.listeners.items() if lc.parse is not None}


class ConfigError(Exception):
    pass


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
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    problem = check_config(config)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return config


def check_config(config: Config) -> str | None:
    """Limits that a type alone cannot express; the message names the key."""
    positive = {
        "ingest.max_message_bytes": config.ingest.max_message_bytes,
        "ingest.max_connections": config.ingest.max_connections,
        "pipeline.batch_lines": config.pipeline.batch_lines,
        "pipeline.batch_bytes": config.pipeline.batch_bytes,
        "pipeline.max_in_flight": config.pipeline.max_in_flight,
        "pipeline.max_buffered_bytes": config.pipeline.max_buffered_bytes,
        "control.subscriber_queue": config.control.subscriber_queue,
    }
    for key, value in positive.items():
        if value <= 0:
            return f"{key} must be > 0 (got {value})"
    detect_problem = check_detect(config.detect)
    if detect_problem:
        return detect_problem
    if config.pipeline.workers < 0:
        return f"pipeline.workers must be >= 0 (got {config.pipeline.workers})"
    tls = config.ingest.tls
    if tls.listen and not (tls.cert and tls.key):
        return "ingest.tls.listen needs ingest.tls.cert and ingest.tls.key"
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
    return None


def split_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[v6]:PORT` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)
