"""What survives a restart: statistics, detector state, recent events and the archive position
they cover, in one snapshot file.

Written periodically and at shutdown through `logtallyd.persist.snapshot` (temp file, fsync, rename);
restored at start. A damaged or incompatible snapshot is set aside and the daemon starts empty.
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import msgspec
import structlog

from logtallyd.detect.config import DetectConfig
from logtallyd.detect.engine import Engine
from logtallyd.ingest.sequences import NatsPosition
from logtallyd.persist.archive import ArchivePosition
from logtallyd.persist.config import StateConfig, state_directory
from logtallyd.persist.snapshot import load_snapshot, write_snapshot
from logtallyd.stats.config import StatsConfig
from logtallyd.stats.windows import Stats

log = structlog.get_logger()

VERSION = 2  # 2: buckets hold exact-or-sketch tallies and HLL distinct counts
FILENAME = "state.snapshot"


class _Payload(msgspec.Struct):
    stats: bytes
    engine: bytes
    clean: bool = False  # written by an orderly shutdown: nothing came after it
    archive: ArchivePosition | None = None  # the totals hold every archived line before this
    nats: NatsPosition | None = None  # ...and every message of the NATS source's stream up to this
    cluster: list[bytes] = []  # sealed fleet seconds not yet published (encoded `NodeSecond`s)


class Restored(msgspec.Struct):
    stats: Stats
    engine: Engine
    created_ts: float
    archive: ArchivePosition | None
    clean: bool
    nats: NatsPosition | None = None
    cluster: list[bytes] = []


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Payload)


class StateStore:
    def __init__(self, config: StateConfig, env: dict[str, str] | None = None) -> None:
        self.config = config
        directory = state_directory(config.directory, dict(os.environ) if env is None else env)
        self.path = Path(directory) / FILENAME if directory else None
        self.saved = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def load(self, stats: StatsConfig, detect: DetectConfig) -> Restored | None:
        """The snapshot's statistics and detector state, rebuilt with these sections; None if absent."""
        if self.path is None:
            return None
        snapshot = load_snapshot(self.path, VERSION)
        if snapshot is None:
            return None
        try:
            payload = _decoder.decode(snapshot.payload)
            restored_stats = Stats.from_bytes(payload.stats, stats)
            engine = Engine.from_bytes(payload.engine, detect)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            aside = self.path.with_name(f"{FILENAME}.incompatible-{int(time.time())}")
            self.path.replace(aside)
            log.warning("snapshot_discarded", path=str(self.path), moved_to=str(aside), reason=str(exc))
            return None
        age = max(0.0, time.time() - snapshot.created_ts)
        if payload.clean:
            log.info("state_restored", path=str(self.path), snapshot_age_s=round(age, 3), clean=True)
        else:
            # The last run did not stop cleanly (crash, kill -9): lines it received after this
            # snapshot are not in the totals, at most `snapshot_interval_s` of them, unless the
            # archive holds them (then they are replayed from `archive`).
            log.warning(
                "state_restored",
                path=str(self.path),
                snapshot_age_s=round(age, 3),
                clean=False,
                lost_at_most_s=None if payload.archive else self.config.snapshot_interval_s,
                archive=msgspec.to_builtins(payload.archive),
                snapshot_ts=snapshot.created_ts,
            )
        return Restored(stats=restored_stats, engine=engine, created_ts=snapshot.created_ts,
                        archive=payload.archive, clean=payload.clean, nats=payload.nats, cluster=payload.cluster)

    def encode(self, stats: Stats, engine: Engine, archive: ArchivePosition | None, clean: bool = False,
               nats: NatsPosition | None = None, cluster: list[bytes] | None = None) -> bytes:
        """The snapshot payload, taken in one step so that `archive`, `nats` and the unpublished
        fleet seconds `cluster` are exactly what the totals hold."""
        return _encoder.encode(_Payload(stats=stats.to_bytes(), engine=engine.to_bytes(), clean=clean,
                                        archive=archive, nats=nats, cluster=cluster or []))

    async def save(self, stats: Stats, engine: Engine, now: float, clean: bool = False,
                   archive: ArchivePosition | None = None) -> None:
        if self.path is None:
            return
        await self.write(self.encode(stats, engine, archive, clean), now)

    async def write(self, data: bytes, now: float) -> None:
        """Store a payload from `encode`; a failure is logged and counted."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(write_snapshot, self.path, data, VERSION, now)
            self.saved += 1
        except OSError as exc:  # an unusable state directory costs the snapshot, never the daemon
            self.failed += 1
            log.error("snapshot_failed", path=str(self.path), error=str(exc))
