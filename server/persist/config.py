"""The `[rejects]`, `[state]` and `[archive]` sections of config.toml: what the daemon writes to disk.

Kept apart from the writers so that loading the config does not import the statistics and
detectors a snapshot holds.
"""
from __future__ import annotations

from typing import Annotated

import msgspec


class RejectsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str = "rejects.log"  # "" disables the file (counts stay in STATS)
    max_bytes: Annotated[int, msgspec.Meta(ge=4096)] = 64 << 20  # then rotated once to PATH.1


class StateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    directory: str = ""  # "" = no snapshots; under systemd: /var/lib/logtally (StateDirectory=)
    # At most this much is lost to a crash (kill -9). The lower bound is the order of the
    # server's tick, which checks whether a snapshot is due.
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
