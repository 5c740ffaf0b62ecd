"""Per-minute history: the pure rollup, the SQLite store (replace, never duplicate; retention),
and HISTORY / /api/v1/history against a real daemon that keeps its trends across a restart."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from logtallyd.daemon.config import Config
from logtallyd.persist.history import HistoryDb
from logtallyd.publish.protocol import CommandError, CommandLimits, History, decode_command
from logtallyd.stats.aggregate import Bucket
from logtallyd.stats.history import due_minutes, parse_duration, regroup, series
from logtally.render import sparkline
from tests.conftest import send_tcp
from tests.test_client import logtally


def lines(minute: int, n: int, level: str = "INFO", first: int = 0) -> bytes:
    return b"".join(b"2025-01-30 12:%02d:%02d %s [api] request %d\n" % (minute, i % 60, level.encode(), first + i)
                    for i in range(n))


def test_regroup_sums_counts_and_takes_the_largest_quantile() -> None:
    rows = {0: {"lines": 10, "errors": 1, "latency_p95": 5.0}, 60: {"lines": 30, "errors": 9, "latency_p95": 7.0},
            3600: {"lines": 4, "errors": 0}}
    hours = regroup(rows, 3600)
    assert hours == {0: {"lines": 40, "errors": 10, "latency_p95": 7.0}, 3600: {"lines": 4, "errors": 0}}
    out = series(hours, ("lines", "error_rate", "latency_p95"))
    assert out == {"lines": [[0, 40], [3600, 4]], "error_rate": [[0, 0.25], [3600, 0.0]], "latency_p95": [[0, 7.0]]}


def test_sparkline_scales_from_min_to_max() -> None:
    assert sparkline([0, 7, 14]) == "▁▅█" and sparkline([3, 3]) == "▁▁" and sparkline([]) == ""


def test_due_minutes_are_the_closed_ones_new_or_reached_by_late_lines() -> None:
    minutes = {10: Bucket(lines=5), 11: Bucket(lines=3), 12: Bucket(lines=1)}
    anchor = 12 * 60 + 7  # minute 12 is still open
    assert due_minutes(minutes, anchor, {}) == [10, 11]
    assert due_minutes(minutes, anchor, {10: 5, 11: 3}) == []
    minutes[10].lines += 2  # a late line reached a written minute: it is written again
    assert due_minutes(minutes, anchor, {10: 5, 11: 3}) == [10]


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("-6h", "90m", "7d", "3600", "6x", "", "٣h")] == [21600, 5400, 604800, 3600,
                                                                                          None, None, None]


def test_store_replaces_a_minute_written_twice_and_prunes_by_age(tmp_path: Path) -> None:
    db = HistoryDb(tmp_path / "h.sqlite")
    db.write({60: {"lines": 5}, 120: {"lines": 7}})
    db.write({120: {"lines": 9}})  # a restart writes a minute again
    assert db.read("minute", 0, 10**9) == {60: {"lines": 5}, 120: {"lines": 9}}
    assert db.read("hour", 0, 10**9) == {0: {"lines": 14}}
    assert db._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # minute rows kept 1 day, hour rows 2 days: at day 1 + 200 s both minutes go, the hour stays
    assert db.prune(86400 + 200, 1, 2) == 2
    assert db.read("minute", 0, 10**9) == {}
    assert db.read("hour", 0, 10**9) == {0: {"lines": 14}}
    db.close()


def test_history_command_decoding() -> None:
    lim = CommandLimits.from_config(Config())
    assert decode_command("HISTORY", lim) == History(("lines", "errors", "error_rate", "latency_p95"), 60, 21600)
    assert decode_command("history lines,level_error 3600 -7d", lim) == History(("lines", "level_error"), 3600, 604800)
    for bad in ("HISTORY nope", "HISTORY lines 90", "HISTORY lines 60 soon", "HISTORY lines 60 1h x"):
        assert isinstance(decode_command(bad, lim), CommandError), bad


def test_history_survives_a_restart(start_server, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = f'[state]\ndirectory = "{state}"\n[history]\ninterval_s = 1\n[http]\nlisten = "127.0.0.1:0"\n'
    first = start_server(config)
    send_tcp(first.address("tcp"), lines(0, 30) + lines(0, 6, "ERROR", 30) + lines(1, 20) + lines(2, 1))
    first.wait_received(57)
    first.wait_log("listening")
    answer = {}
    for _ in range(100):  # the job writes the two closed minutes within a tick or two
        answer = first.command("HISTORY lines,errors,error_rate,level_error 60 1h")
        if len(answer.get("series", {}).get("lines", [])) == 2:
            break
        time.sleep(0.1)
    (m0, n0), (m1, n1) = answer["series"]["lines"]
    assert (n0, n1) == (36, 20) and m1 == m0 + 60
    assert answer["series"]["errors"] == [[m0, 6], [m1, 0]]
    assert answer["series"]["error_rate"] == [[m0, 6 / 36], [m1, 0.0]]
    assert answer["step"] == 60 and "latency_p95" in answer["approximate"]
    assert first.stats()["history"] == {"rows_written": 2, "rows_lost": 0, "failed": 0}
    hourly = first.command("HISTORY lines 3600 1d")["series"]["lines"]
    assert [v for _, v in hourly] == [56]  # the open minute (12:02) is not history yet
    assert "error" in first.command("HISTORY lines 60 3650d")  # more points than history.max_points
    assert first.stop() == 0  # the shutdown writes the minutes closed since the last job
    second = start_server(config.replace('interval_s = 1', 'interval_s = 3600'))
    again = second.command("HISTORY lines,errors,error_rate,level_error 60 1h")
    assert again["series"] == answer["series"]  # no duplicate rows, nothing lost
    host, port = second.address("http")
    with urllib.request.urlopen(f"http://{host}:{port}/api/v1/history?series=lines,errors&step=60&since=-1h",
                                timeout=10) as response:
        body = json.loads(response.read())
    assert body["series"]["lines"] == answer["series"]["lines"]
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(f"http://{host}:{port}/api/v1/history?step=61", timeout=10)
    assert bad.value.code == 400 and json.loads(bad.value.read())["parameter"] == "step"
    # `logtally history`: the same answer with --json, one sparkline row per series without
    out = logtally(second, "--json", "history", "--series", "lines,errors", "--since", "1h")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["series"]["lines"] == answer["series"]["lines"]
    chart = logtally(second, "history", "--series", "lines,latency_p95", "--since", "1h").stdout.decode()
    assert "lines        █▁  min 20 max 36 last 20" in chart and "latency_p95  (no data)" in chart
    refused = logtally(second, "history", "--step", "61")
    assert refused.returncode != 0 and b"multiple of 60" in refused.stderr


def test_history_off_without_a_state_directory(start_server) -> None:
    server = start_server('[state]\ndirectory = ""\n')
    assert "history is off" in server.command("HISTORY")["error"]


def test_a_backlog_sent_at_once_keeps_every_minute_in_history(start_server, tmp_path: Path) -> None:
    """Lines one every 2 s over 67 minutes, sent in one burst: a batch spans more than the
    largest window, so its first minutes enter and leave the windows in one merge. Their rows
    still reach history.sqlite (held for the next write), every line but the open minute's."""
    state = tmp_path / "state"
    server = start_server(f'[state]\ndirectory = "{state}"\n[history]\ninterval_s = 1\n')
    start = 1_738_238_400  # 2025-01-30T12:00:00Z, a minute boundary
    text = "".join(json.dumps({"ts": start + 2 * i, "level": "info", "msg": f"job {i}"}) + "\n" for i in range(2000))
    send_tcp(server.address("tcp"), text.encode())
    assert server.wait_received(2000)["late"] == 0
    points: list = []
    for _ in range(100):
        answer = server.command("HISTORY lines 60 2h")
        points = answer.get("series", {}).get("lines", [])
        if sum(n for _, n in points) >= 2000 - 30:
            break
        time.sleep(0.1)
    newest = start + 2 * 1999
    open_minute = newest - newest % 60
    assert sum(n for _, n in points) == sum(1 for i in range(2000) if start + 2 * i < open_minute)
    assert [ts for ts, _ in points] == list(range(start, open_minute, 60))
    assert server.stats()["history"]["rows_lost"] == 0
