"""`analyze`'s per-hour and per-day trends: the daemon's history rollups (`logtallyd.stats.history`)
taken from the windows as the files are read, so a report's hours are the ones the daemon's
history would hold for the same lines.
"""
from __future__ import annotations

from typing import Any

from logtallyd.stats.history import SERIES, Rows, add_row, due_minutes, minute_row, series
from logtallyd.stats.aggregate import Bucket
from logtallyd.stats.windows import Stats

__all__ = ["Trends"]

HOUR = 3600
DAY = 86400


class Trends:
    """Minute rows of the minutes the windows still hold (late lines may change them), folded into
    hour and day rows once the windows let go of them, so memory stays bounded by the windows."""

    def __init__(self) -> None:
        self.open: Rows = {}  # start second -> the minute's row, while the windows hold it
        self.written: dict[int, int] = {}  # minute -> lines it held when its row was taken
        self.hours: Rows = {}
        self.days: Rows = {}

    def update(self, stats: Stats, now: float, final: bool = False) -> None:
        """After a merge: take the minutes whose lines changed, the one the anchor is in as well
        (`final`: fold them all)."""
        # Not only the minutes the anchor passed: after a quiet spell longer than the largest
        # window, one merge moves the anchor past the newest minute and the windows drop it in
        # the same step, so its row must already be taken. A minute that takes lines in a merge
        # is inside the windows after it, so the row taken here is the minute's last.
        past_every_minute = (max(stats.minutes, default=0) + 1) * 60
        current = stats.anchor(now) // 60  # this minute and later ones still take lines
        for m in due_minutes(stats.minutes, past_every_minute, self.written):
            self.open[m * 60] = minute_row(stats.minutes[m], close=m < current)
            self.written[m] = stats.minutes[m].lines
        for m in [m for m in self.written if m not in stats.minutes or final]:
            self._fold(m * 60)
            del self.written[m]

    def retire(self, minute: int, bucket: Bucket) -> None:
        """`Stats.on_retire`: the windows let go of `minute`; its row is final (it may have come
        and gone within one merge, when a batch spans more than the largest window)."""
        if self.written.get(minute) != bucket.lines:
            self.open[minute * 60] = minute_row(bucket, close=True)
        self.written.pop(minute, None)
        self._fold(minute * 60)

    def _fold(self, start: int) -> None:
        row = self.open.pop(start, None)
        if row is None:
            return
        for rows, step in ((self.hours, HOUR), (self.days, DAY)):
            add_row(rows.setdefault(start - start % step, {}), row)

    def answer(self) -> dict[str, Any]:
        """HISTORY-shaped answers, one per step: `{"hour": {...}, "day": {...}}`."""
        return {name: {"series": series(rows, SERIES), "step": step}
                for name, rows, step in (("hour", self.hours, HOUR), ("day", self.days, DAY))}
