"""What survives a restart: statistics, detector state and recent events, in one snapshot file.

Written periodically and at shutdown through `logtallyd.persist.snapshot` (temp file, fsync, rename);
restored at start. A damaged or incompatible snapshot is set aside and the daemon starts empty.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import structlog

from logtallyd.detect.config import DetectConfig
from logtallyd.detect.engine import Engine
from logtallyd.persist.config import StateConfig
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


class Restored(msgspec.Struct):
    stats: Stats
    engine: Engine
    created_ts: float


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Payload)


class StateStore:
    def __init__(self, config: StateConfig) -> None:
        self.config = config
        self.path = Path(config.directory) / FILENAME if config.directory else None
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
            # snapshot are not in the totals, at most `snapshot_interval_s` of them.
            log.warning(
                "state_restored",
                path=str(self.path),
                snapshot_age_s=round(age, 3),
                clean=False,
                lost_at_most_s=self.config.snapshot_interval_s,
                snapshot_ts=snapshot.created_ts,
            )
        return Restored(stats=restored_stats, engine=engine, created_ts=snapshot.created_ts)

    async def save(self, stats: Stats, engine: Engine, now: float, clean: bool = False) -> None:
        if self.path is None:
            return
        data = _encoder.encode(_Payload(stats=stats.to_bytes(), engine=engine.to_bytes(), clean=clean))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(write_snapshot, self.path, data, VERSION, now)
            self.saved += 1
        except OSError as exc:  # an unusable state directory costs the snapshot, never the daemon
            self.failed += 1
            log.error("snapshot_failed", path=str(self.path), error=str(exc))
