"""Third-party vectors (../shared/corpus): go-syslog RFC 5424/3164 tables, Filebeat's Apache access
cases and the Loghub-2k samples. Reports pass rates (run with `-s` to see them) and asserts >= 99%.

Counting rules (see the corpus README):
- go-syslog `valid:false` agrees when we do not label the line `rfc5424` (falling back to
  rfc3164/raw or rejecting is fine).
- `rfc5424_compliant_msg` cases are invalid only under go-syslog's `WithCompliantMsg()`; with
  default options (what logtally does: it receives text already decoded with errors="replace")
  they are valid RFC 5424, so they must come out `rfc5424`.
- Messages: go-syslog keeps a leading BOM, logtally strips it (RFC 5424 §6.4), so expected
  messages are compared without it. Invalid UTF-8 is compared after the same replacement decode.
"""
from __future__ import annotations

import base64
import csv
import datetime as dt
import json
from pathlib import Path

import pytest

from logtallyd.parsing import parse_line
from logtallyd.records import Record

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")

REF_TS = 1764000000.0  # 2025-11-24: an arrival time; only RFC 3164 year inference reads it
TARGET = 0.99


def _text(case: dict, key: str = "input") -> str:
    if key in case:
        return case[key]
    return base64.b64decode(case[key + "_b64"]).decode("utf-8", errors="replace")


def _epoch(rfc3339: str) -> float:
    return dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class Tally:
    def __init__(self) -> None:
        self.verdicts = [0, 0]
        self.fields = [0, 0]
        self.disagreements: list[str] = []

    def verdict(self, ok: bool, case_id: str, why: str) -> bool:
        self.verdicts[0] += ok
        self.verdicts[1] += 1
        if not ok:
            self.disagreements.append(f"{case_id}: verdict: {why}")
        return ok

    def field(self, case_id: str, name: str, got: object, want: object) -> None:
        ok = got == want if not isinstance(want, float) else (
            isinstance(got, float) and abs(got - want) < 1e-6)
        self.fields[0] += ok
        self.fields[1] += 1
        if not ok:
            self.disagreements.append(f"{case_id}: {name}: got {got!r}, want {want!r}")

    def rates(self) -> tuple[float, float]:
        return (self.verdicts[0] / max(self.verdicts[1], 1), self.fields[0] / max(self.fields[1], 1))

    def report(self, title: str) -> None:
        v, f = self.rates()
        print(f"\n{title}: verdicts {self.verdicts[0]}/{self.verdicts[1]} ({v:.2%}), "
              f"fields {self.fields[0]}/{self.fields[1]} ({f:.2%})")
        for d in self.disagreements:
            print("  disagree:", d[:300])


def _go_syslog_cases() -> list[dict]:
    with open(CORPUS / "go-syslog" / "cases.jsonl", encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    return [c for c in cases if c["set"] in ("rfc5424", "rfc5424_compliant_msg", "rfc3164")]


def _check_syslog_fields(t: Tally, cid: str, rec: Record, exp: dict, year_known: bool) -> None:
    t.field(cid, "facility", rec.facility, exp.get("facility"))
    t.field(cid, "severity", rec.severity, exp.get("severity"))
    t.field(cid, "hostname", rec.host, exp.get("hostname"))
    t.field(cid, "appname", rec.service, exp.get("appname"))
    t.field(cid, "procid", rec.procid, exp.get("procid"))
    if year_known:
        t.field(cid, "msgid", rec.msgid, exp.get("msgid"))
        t.field(cid, "structured_data", rec.structured_data, exp.get("structured_data"))
    want_msg = _text(exp, "message") if ("message" in exp or "message_b64" in exp) else ""
    t.field(cid, "message", rec.message, want_msg.removeprefix("\ufeff").rstrip())
    ts = exp.get("timestamp")
    if ts is None:
        t.field(cid, "timestamp", rec.ts, None)
    elif year_known:
        t.field(cid, "timestamp", rec.ts, _epoch(ts))
    else:  # RFC 3164: go-syslog writes year 0000; compare month..second
        got = None if rec.ts is None else dt.datetime.fromtimestamp(rec.ts, dt.timezone.utc)
        t.field(cid, "timestamp", got and got.strftime("%m-%dT%H:%M:%S"), ts[5:19])


def test_go_syslog_vectors() -> None:
    t = Tally()
    cases = _go_syslog_cases()
    assert len(cases) == 675
    for case in cases:
        cid, line = case["id"], _text(case)
        rec = parse_line(line, REF_TS)
        is_5424 = isinstance(rec, Record) and rec.format == "rfc5424"
        if case["set"] == "rfc3164":
            if t.verdict(isinstance(rec, Record) and rec.format == "rfc3164", cid, repr(rec)):
                _check_syslog_fields(t, cid, rec, case["expected"], year_known=False)
        elif case["valid"] or case["set"] == "rfc5424_compliant_msg":
            if t.verdict(is_5424, cid, f"want rfc5424, got {rec!r}"):
                if "expected" in case:
                    _check_syslog_fields(t, cid, rec, case["expected"], year_known=True)
        else:
            t.verdict(not is_5424, cid, f"go-syslog: {case['error']}; got rfc5424 {line!r}")
    t.report("go-syslog rfc5424+rfc3164")
    verdicts, fields = t.rates()
    assert verdicts >= TARGET and fields >= TARGET


def test_filebeat_apache_access() -> None:
    t = Tally()
    with open(CORPUS / "filebeat-apache-access" / "cases.jsonl", encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    assert len(cases) == 15
    for case in cases:
        cid = case["id"]
        rec = parse_line(case["input"], REF_TS)
        if not t.verdict(isinstance(rec, Record) and rec.format == "access", cid, repr(rec)):
            continue
        exp = case["expected"]
        if exp is None:
            continue
        http = rec.http
        dash = {"-": None}
        t.field(cid, "@timestamp", rec.ts, _epoch(exp["@timestamp"]))
        t.field(cid, "source.address", http.ip, exp.get("source.address"))
        t.field(cid, "status", http.status, exp.get("http.response.status_code"))
        method = exp.get("http.request.method")
        t.field(cid, "method", http.method, method.upper() if method else None)
        t.field(cid, "url", http.path, exp.get("url.original"))
        version = exp.get("http.version")
        t.field(cid, "protocol", http.protocol, f"HTTP/{version}" if version else None)
        t.field(cid, "bytes", http.bytes, exp.get("http.response.body.bytes"))
        referrer = exp.get("http.request.referrer")
        t.field(cid, "referrer", http.referer, dash.get(referrer, referrer))
        ua = exp.get("user_agent.original")
        t.field(cid, "user_agent", http.user_agent, dash.get(ua, ua))
    t.report("filebeat apache access")
    verdicts, fields = t.rates()
    assert verdicts >= TARGET and fields >= TARGET


# dataset -> (format, structured.csv column holding the level or None, compare Content?)
LOGHUB = {
    "Hadoop": ("app", "Level", True),
    "Spark": ("app", "Level", True),
    "Zookeeper": ("app", "Level", True),
    "HDFS": ("app", "Level", True),
    "Apache": ("app", "Level", True),
    "Linux": ("rfc3164", None, True),
    "OpenSSH": ("rfc3164", None, True),
}


@pytest.mark.parametrize("dataset", sorted(LOGHUB))
def test_loghub_samples(dataset: str) -> None:
    fmt, level_col, compare_content = LOGHUB[dataset]
    t = Tally()
    base = CORPUS / "loghub-2k" / dataset
    raw_lines = (base / f"{dataset}_2k.log").read_text(encoding="utf-8", errors="replace")
    lines = raw_lines.splitlines()
    with open(base / f"{dataset}_2k.log_structured.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(lines) == len(rows) == 2000
    for line, row in zip(lines, rows):
        cid = f"{dataset}:{row['LineId']}"
        rec = parse_line(line, REF_TS)
        if not t.verdict(isinstance(rec, Record) and rec.format == fmt, cid, repr(rec)[:200]):
            continue
        if level_col:
            want = row[level_col].upper()
            want = {"WARN": "WARNING", "FATAL": "CRIT"}.get(want, want)
            t.field(cid, "level", rec.level, want)
        if compare_content:
            t.field(cid, "message", rec.message.strip(), row["Content"].strip())
    t.report(f"loghub {dataset}")
    verdicts, fields = t.rates()
    assert verdicts >= TARGET and fields >= TARGET
