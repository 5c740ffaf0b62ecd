"""Application lines: the layouts listed in `logtallyd.parsing.applog`."""
from __future__ import annotations

import datetime as dt

import pytest

from logtallyd.parsing import ParseOptions, parse_line
from logtallyd.records import Record, Rejected

REF = 1764000000.0


def utc(*args: int, micro: int = 0, offset_minutes: int = 0) -> float:
    tz = dt.timezone(dt.timedelta(minutes=offset_minutes))
    return dt.datetime(*args, microsecond=micro, tzinfo=tz).timestamp()


def test_canonical_comma_millis() -> None:
    assert parse_line("2025-01-30 12:00:00,123 ERROR [payments] card declined", REF) == Record(
        format="app", message="card declined", ts=utc(2025, 1, 30, 12, micro=123000),
        service="payments", level="ERROR", severity=3)


@pytest.mark.parametrize("line,service,level,message,ts", [
    ("2025-01-30T12:00:00.5Z WARN [api] slow", "api", "WARNING", "slow", utc(2025, 1, 30, 12, micro=500000)),
    ("2025-01-30T13:00:00+01:00 [ERROR] db.pool: exhausted", "db.pool", "ERROR", "exhausted", utc(2025, 1, 30, 12)),
    ("2025-01-30 12:00:00 INFO worker: tick", "worker", "INFO", "tick", utc(2025, 1, 30, 12)),
    ("2025-01-30 12:00:00 FATAL Timeout: upstream", None, "CRIT", "Timeout: upstream", utc(2025, 1, 30, 12)),
    ("2025-01-30 12:00:00,1 [billing] TRACE x", "billing", "DEBUG", "x", utc(2025, 1, 30, 12, micro=100000)),
    ("2025-01-30 12:00:00,123 - myapp.db - WARNING - retry", "myapp.db", "WARNING", "retry", utc(2025, 1, 30, 12, micro=123000)),
    ("2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.X: Created", "org.apache.hadoop.X", "INFO", "Created", utc(2015, 10, 18, 18, 1, 47, micro=978000)),
    ("2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
     "FastLeaderElection", "INFO", "Notification time out: 3200", utc(2015, 7, 29, 17, 41, 44, micro=747000)),
    ("17/06/09 20:10:40 INFO spark.SecurityManager: Changing view acls to: yarn,curi", "spark.SecurityManager", "INFO",
     "Changing view acls to: yarn,curi", utc(2017, 6, 9, 20, 10, 40)),
    ("[Sun Dec 04 04:47:44 2005] [error] mod_jk child in error state 6", None, "ERROR", "mod_jk child in error state 6", utc(2005, 12, 4, 4, 47, 44)),
])
def test_variants(line: str, service: str | None, level: str, message: str, ts: float) -> None:
    rec = parse_line(line, REF)
    assert (rec.format, rec.service, rec.level, rec.message) == ("app", service, level, message)
    assert rec.ts == pytest.approx(ts)


def test_hdfs_pid() -> None:
    rec = parse_line("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating", REF)
    assert (rec.ts, rec.procid, rec.service, rec.message) == (
        utc(2008, 11, 9, 20, 36, 15), "148", "dfs.DataNode$PacketResponder", "PacketResponder 1 terminating")


def test_apache_24_error_log() -> None:
    rec = parse_line("[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist", REF)
    assert rec == Record(format="app", message="[client 72.15.99.187] File does not exist",
                         ts=utc(2000, 10, 11, 14, 32, 52, micro=123456), service="core", level="ERROR",
                         severity=3, procid="35708")


@pytest.mark.parametrize("line", [
    "2025-01-30 12:00:00 hello world",       # no level word
    "2025-02-30 12:00:00 INFO impossible date",
    "2025-01-30 25:00:00 INFO impossible hour",
])
def test_not_app(line: str) -> None:
    assert parse_line(line, REF).format == "raw"
    assert parse_line(line, REF, ParseOptions(force="app")) == Rejected("invalid_app")
