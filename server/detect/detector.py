"""The one shape every anomaly detector has: an event-time second of merged feeds in, events out.

The engine (`logtallyd.detect.engine`) holds a table of `Detector`s and drives them alike: `step`
each processed second, `reconfigure` on SIGHUP (state kept), `figures` for STATS.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, Protocol, TypeVar

import msgspec

from logtallyd.detect.config import DetectConfig
from logtallyd.detect.events import Event
from logtallyd.detect.feed import Second

__all__ = ["Detector", "SectionDetector"]


class Detector(Protocol):
    @property
    def enabled(self) -> bool:
        """Whether the engine steps it (read every second, so a SIGHUP can switch it)."""
        ...

    def step(self, second: int, data: Second | None) -> list[Event]:
        """Process one event-time second, in order (None: a second without data)."""
        ...

    def reconfigure(self, config: DetectConfig) -> None:
        """Apply a new `[detect]` section, keeping state wherever its meaning is unchanged."""
        ...

    def figures(self) -> dict[str, int]:
        """Its own STATS `detect` figures, by their STATS names."""
        ...


class _Section(Protocol):
    @property
    def enabled(self) -> bool: ...


C = TypeVar("C", bound=_Section)
S = TypeVar("S", bound=msgspec.Struct)


class SectionDetector(ABC, Generic[C, S]):
    """A detector set by one section of `[detect]` (`section` picks it), whose whole state is
    one Struct that the engine's snapshot holds. A new section replaces the old one; the state
    stays, so windows and episodes survive a reload (a shorter window expires more next step)."""

    def __init__(self, config: DetectConfig, state: S) -> None:
        self.config: C = self.section(config)
        self.state = state

    @abstractmethod
    def section(self, config: DetectConfig) -> C: ...

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def reconfigure(self, config: DetectConfig) -> None:
        self.config = self.section(config)

    @abstractmethod
    def step(self, second: int, data: Second | None) -> list[Event]: ...

    def figures(self) -> dict[str, int]:
        return {}
