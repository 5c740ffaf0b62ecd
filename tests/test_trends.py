"""`analyze`'s per-hour and per-day trends: the history's minute rows taken as the windows move,
folded into hours and days once the windows drop them; a minute that late lines reach is taken
again (replaced, not added twice)."""
from __future__ import annotations

import collections
from pathlib import Path

from logtallyd.offline.analyze import analyze_paths
from logtallyd.offline.trends import Trends
from logtallyd.stats.windows import Stats, StatsConfig


def app_line(ts: int, level: str) -> str:
    import time

    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ts))} {level} [api] request at {ts}"


def replay(tmp_path: Path, lines: list[str], batch_lines: int) -> tuple[Stats, dict]:
    log = tmp_path / "app.log"
    log.write_text("\n".join(lines) + "\n")
    stats = Stats(StatsConfig(), 0.0)
    trends = Trends()
    analyze_paths([str(log)], workers=0, batch_lines=batch_lines, into=stats,
                  on_merge=lambda partial, now: trends.update(stats, now))
    trends.update(stats, 0.0, final=True)
    return stats, trends.answer()


def test_hours_and_days_are_the_lines_of_each(tmp_path: Path) -> None:
    start = 1738450800  # 2025-02-01T23:00:00Z: two hours across midnight
    stamps = [start + 7 * i for i in range(1000)]
    levels = ["ERROR" if i % 10 == 0 else "INFO" for i in range(1000)]
    stats, answer = replay(tmp_path, [app_line(ts, lv) for ts, lv in zip(stamps, levels)], batch_lines=50)
    assert stats.late == 0
    hours = collections.Counter(ts - ts % 3600 for ts in stamps)
    days = collections.Counter(ts - ts % 86400 for ts in stamps)
    errors = collections.Counter(ts - ts % 3600 for ts, lv in zip(stamps, levels) if lv == "ERROR")
    assert answer["hour"]["series"]["lines"] == [[h, n] for h, n in sorted(hours.items())]
    assert answer["day"]["series"]["lines"] == [[d, n] for d, n in sorted(days.items())]
    assert answer["hour"]["series"]["errors"] == [[h, errors[h]] for h in sorted(hours)]
    assert answer["hour"]["step"] == 3600 and answer["day"]["step"] == 86400


def test_a_minute_late_lines_reach_is_counted_once(tmp_path: Path) -> None:
    start = 1738400400  # 2025-02-01T09:00:00Z
    first = [app_line(start + s, "INFO") for s in range(0, 300, 3)]  # 100 lines in minutes 0-4
    late = [app_line(start + 30, "INFO") for _ in range(10)]  # back into minute 0, within the windows
    stats, answer = replay(tmp_path, first + late, batch_lines=20)
    assert stats.late == 0 and stats.received == 110
    assert answer["hour"]["series"]["lines"] == [[start, 110]]


def test_a_minute_the_windows_drop_in_one_jump_is_still_counted(tmp_path: Path) -> None:
    # A quiet spell longer than the largest window: the batch after it moves the anchor past the
    # minute the previous batch ended in, and the windows drop that minute in the same merge.
    start = 1738400400  # 2025-02-01T09:00:00Z
    before = [app_line(start + s, "INFO") for s in range(0, 60, 3)]  # 20 lines, minute 0 only
    after = [app_line(start + 7200 + s, "ERROR") for s in range(0, 60, 3)]  # 20 lines two hours on
    stats, answer = replay(tmp_path, before + after, batch_lines=20)
    assert stats.late == 0 and stats.received == 40
    assert answer["hour"]["series"]["lines"] == [[start, 20], [start + 7200, 20]]
    assert answer["hour"]["series"]["errors"] == [[start, 0], [start + 7200, 20]]
