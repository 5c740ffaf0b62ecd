"""The history store: minute and hour rows of `logtallyd.stats.history` in SQLite (WAL mode) in
the state directory, pruned by age. The calls block; the daemon runs them with `asyncio.to_thread`.
"""
from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import structlog

from logtallyd.persist.config import HistoryConfig
from logtallyd.stats.history import COUNTS, STORED, Rows, due_minutes, minute_row, regroup, series
from logtallyd.stats.aggregate import Bucket
from logtallyd.stats.windows import Stats

log = structlog.get_logger()

FILENAME = "history.sqlite"
HOUR = 3600
_TABLES = ("minute", "hour")


class HistoryDb:
    """One SQLite file; a lock serializes the threads `asyncio.to_thread` runs calls on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # WAL: a reader never waits for the writer, and a crash mid-write leaves the last commit.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for table in _TABLES:
            # One row per (start second, series): writing a minute again replaces, never duplicates.
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (ts INTEGER NOT NULL, series TEXT NOT NULL, "
                             "value REAL NOT NULL, PRIMARY KEY (ts, series)) WITHOUT ROWID")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def write(self, minutes: Rows) -> None:
        """Store minute rows (keyed by start second) and recompute the hours they fall in."""
        if not minutes:
            return
        with self._lock, self._db:
            self._db.execute("BEGIN")
            for ts, row in minutes.items():
                self._db.execute("DELETE FROM minute WHERE ts = ?", (ts,))
                self._db.executemany("INSERT INTO minute VALUES (?, ?, ?)",
                                     [(ts, name, float(v)) for name, v in row.items() if name in STORED])
            for hour in sorted({ts - ts % HOUR for ts in minutes}):
                rows = self._read("minute", hour, hour + HOUR - 1)
                merged = regroup(rows, HOUR).get(hour, {})
                self._db.execute("DELETE FROM hour WHERE ts = ?", (hour,))
                self._db.executemany("INSERT INTO hour VALUES (?, ?, ?)",
                                     [(hour, name, v) for name, v in merged.items()])

    def prune(self, now: float, minute_days: int, hour_days: int) -> int:
        """Delete rows past their retention; returns how many."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            n = self._db.execute("DELETE FROM minute WHERE ts < ?", (int(now) - minute_days * 86400,)).rowcount
            n += self._db.execute("DELETE FROM hour WHERE ts < ?", (int(now) - hour_days * 86400,)).rowcount
        return n

    def read(self, table: str, lo: int, hi: int) -> Rows:
        with self._lock:
            return self._read(table, lo, hi)

    def _read(self, table: str, lo: int, hi: int) -> Rows:
        assert table in _TABLES
        rows: Rows = {}
        for ts, name, value in self._db.execute(
                f"SELECT ts, series, value FROM {table} WHERE ts BETWEEN ? AND ? ORDER BY ts", (lo, hi)):
            rows.setdefault(ts, {})[name] = int(value) if name in COUNTS else value  # counts are whole
        return rows

    def newest_minute(self) -> int | None:
        with self._lock:
            (ts,) = self._db.execute("SELECT max(ts) FROM minute").fetchone()
        return ts


class History:
    """The daemon's side: writes closed minutes of `Stats` on its periodic job, answers HISTORY."""

    def __init__(self, config: HistoryConfig, directory: str) -> None:
        self.config = config
        self.db = HistoryDb(Path(directory) / FILENAME)
        self.written: dict[int, int] = {}  # minute -> lines it held when written
        # Rows of minutes the windows let go of before a tick wrote them (`Stats.on_retire`): a
        # backlog read faster than the tick moves the anchor by more than the largest window.
        self.retired: Rows = {}
        self.rows_written = 0
        self.rows_lost = 0  # retired rows beyond `max_retired` before a tick: counted, not written
        self.failed = 0

    def retire(self, minute: int, bucket: Bucket) -> None:
        """`Stats.on_retire`: keep the minute's final row for the next tick."""
        if self.written.pop(minute, None) == bucket.lines:
            return  # written as it is
        if len(self.retired) >= self.config.max_retired:
            self.rows_lost += 1
            return
        self.retired[minute * 60] = minute_row(bucket)

    async def tick(self, stats: Stats, now: float) -> None:
        """Write the minutes closed (or changed by late lines) since the last tick, then prune."""
        anchor = stats.anchor(now)
        due = due_minutes(stats.minutes, anchor, self.written)
        rows = {m * 60: minute_row(stats.minutes[m]) for m in due}  # on the loop: the buckets change
        lines = {m: stats.minutes[m].lines for m in due}
        if self.retired:
            rows = {**self.retired, **rows}
            self.retired = {}
        try:
            await asyncio.to_thread(self._store, rows, anchor)
        except sqlite3.Error as exc:  # a broken history file costs the trends, never the daemon
            self.failed += 1
            log.error("history_write_failed", path=str(self.db.path), error=str(exc))
            return
        self.written.update(lines)
        self.rows_written += len(rows)
        for m in [m for m in self.written if m not in stats.minutes]:
            del self.written[m]  # pruned from the windows: no late line can reach it any more

    def _store(self, rows: Rows, anchor: int) -> None:
        # Retention counts back from the windows' anchor: a replayed old file keeps its history.
        self.db.write(rows)
        self.db.prune(anchor, self.config.minute_days, self.config.hour_days)

    async def answer(self, names: tuple[str, ...], step: int, since_s: int, now: float) -> dict[str, Any]:
        """The rows of the `since_s` seconds up to `now` (the daemon passes its windows' anchor, so
        a replayed file's history is where its events are), regrouped to `step`."""
        if since_s // step > self.config.max_points:
            return {"error": f"since/step is {since_s // step} points; at most {self.config.max_points} "
                             "(history.max_points): a larger step or a shorter since"}
        table = "hour" if step % HOUR == 0 else "minute"
        hi = int(now)
        lo = hi - since_s
        lo -= lo % step
        try:
            rows = await asyncio.to_thread(self.db.read, table, lo, hi)
        except sqlite3.Error as exc:
            self.failed += 1
            return {"error": f"history unreadable: {exc}"}
        return {"series": series(regroup(rows, step), names), "step": step, "since": lo, "until": hi,
                "approximate": APPROXIMATE}

    def figures(self) -> dict[str, Any]:
        return {"rows_written": self.rows_written, "rows_lost": self.rows_lost, "failed": self.failed}

    def close(self) -> None:
        self.db.close()


def open_history(config: HistoryConfig, directory: str | None) -> History | None:
    """The history of `directory`, or None: off, no state directory, or unusable (logged; the
    daemon runs on without trends, as it does without snapshots)."""
    if directory is None or not config.enabled:
        return None
    try:
        return History(config, directory)
    except (OSError, sqlite3.Error) as exc:
        log.error("history_unavailable", path=str(Path(directory) / FILENAME), error=str(exc))
        return None


# Said in every answer: which series are not exact, and how.
APPROXIMATE = {
    "latency_p50": "KLL sketch per minute; over a longer step the largest minute's (an upper bound)",
    "latency_p95": "as latency_p50",
    "latency_p99": "as latency_p50",
    "distinct_ip": "HLL estimate per minute; over a longer step the largest minute's (a lower bound)",
}
