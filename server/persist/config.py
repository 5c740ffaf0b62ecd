"""The `[rejects]`, `[state]` and `[archive]` sections of config.toml: what the daemon writes to disk.

Kept apart from the writers so that loading the config does not import the statistics and
detectors a snapshot holds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec


class RejectsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str = "rejects.log"  # "" disables the file (counts stay in STATS)
    max_bytes: Annotated[int, msgspec.Meta(ge=4096)] = 64 << 20  # then rotated once to PATH.1


AUTO = "auto"


class StateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # "auto" = `state_directory()`; "" = no snapshots.
    directory: str = AUTO
    # Without the archive at most this much is lost to a crash (kill -9); with it, nothing that
    # reached the archive. The lower bound is the order of the server's tick, which checks
    # whether a snapshot is due.
    snapshot_interval_s: Annotated[float, msgspec.Meta(ge=0.1, le=86400)] = 30.0


class ArchiveConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`[archive]` in config.toml."""

    enabled: bool = False
    # systemd's LogsDirectory=logtally is /var/log/logtally (owned by the DynamicUser).
    directory: str = "/var/log/logtally/archive"
    max_bytes: Annotated[int, msgspec.Meta(ge=1)] = 64 * 1024 * 1024  # rotate before a segment passes this
    max_age_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0  # rotate a segment this old; 0 = never by age
    keep_segments: Annotated[int, msgspec.Meta(ge=0)] = 48  # closed segments kept; 0 = keep all
    gzip: bool = True
    # What a power loss can cost of the archived (and so of the counted) lines: "batch" = nothing,
    # each batch is fsynced before it is counted; "interval" = up to `fsync_interval_ms` (plus one
    # daemon tick); "never" = whatever the kernel has not written back yet. A kill -9 costs none.
    fsync: Literal["batch", "interval", "never"] = "interval"
    fsync_interval_ms: Annotated[int, msgspec.Meta(ge=10, le=60000)] = 1000


def state_directory(configured: str, env: dict[str, str]) -> str:
    """Where snapshots go: `configured`, or for "auto" systemd's `$STATE_DIRECTORY` (StateDirectory=,
    /var/lib/logtally), else `$XDG_STATE_HOME/logtally`, else `~/.local/state/logtally`, else
    `logtally-state` in the working directory. Pure: the environment is handed in."""
    if configured != AUTO:
        return configured
    if env.get("STATE_DIRECTORY"):
        # systemd may pass several, colon-separated, in the order StateDirectory= lists them.
        return env["STATE_DIRECTORY"].split(":")[0]
    if env.get("XDG_STATE_HOME"):
        return str(Path(env["XDG_STATE_HOME"]) / "logtally")
    if env.get("HOME"):
        return str(Path(env["HOME"]) / ".local" / "state" / "logtally")
    return "logtally-state"


class HistoryConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[history]`: per-minute trends in SQLite in the `[state]` directory (off when it is "")."""

    enabled: bool = True
    interval_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 60.0  # how often closed minutes are written
    minute_days: Annotated[int, msgspec.Meta(ge=1, le=366)] = 7  # minute rows kept this long
    hour_days: Annotated[int, msgspec.Meta(ge=1, le=3660)] = 90  # hour rows kept this long
    max_points: Annotated[int, msgspec.Meta(ge=10, le=100000)] = 10000  # per series in one answer
    # minute rows the windows let go of before a write took them (a backlog read faster than
    # `interval_s`), kept for the next write at most; beyond, counted as `rows_lost`
    max_retired: Annotated[int, msgspec.Meta(ge=60, le=1000000)] = 10080
