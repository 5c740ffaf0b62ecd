"""`logtallyd analyze`'s reports on a generated access log: the text report's panels and number
style, the one-file offline HTML page, `--json`'s `web` key, the progress bar (a TTY only), and
agreement with GoAccess on the same file."""
from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from logtallyd.offline.analyze import run_analyze
from tests.conftest import ROOT, require_tool
from tests.test_webreport import generate

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def access_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "access.log"
    path.write_text("\n".join(generate(5000, seed=11)) + "\n")
    return path


def analyze_json(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> dict:
    assert run_analyze([str(path), "--json", "--workers", "0", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_text_report_has_every_panel(access_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_analyze([str(access_log), "--workers", "0", "--events"]) == 0
    text = capsys.readouterr().out
    for title in ("Unique visitors per day:", "Time distribution (hour of day, UTC):", "Requested files (URLs):",
                  "Static requests:", "Not found URLs (404s):", "Visitor hosts and IPs", "Operating systems:",
                  "Browsers:", "Referrer URLs:", "Referring sites:", "HTTP status codes:",
                  "Latency per endpoint (ms), top 8 by hits:", "top error: error templates",
                  "top suspicious_ip: suspicious IPs (4xx/5xx answers)", "events: "):
        assert title in text, title
    assert "relative error ≈1.6%" in text and "unique visitors  ≈" in text
    assert re.search(r"^  2024-10-10  █+[▏▎▍▌▋▊▉]?\s+[\d,]+\s", text, re.M)  # a day with its bar
    assert re.search(r"^  00    █+", text, re.M)  # an hour with its bar
    assert "  4xx Client errors" in text and "    404" in text
    assert re.search(r"^  /missing\s+[\d,]+\s+\d+\.\d%\s+0\s+[\d.]+ (KiB|MiB)$", text, re.M)
    assert "Chrome" in text and "Mobile Safari" in text and "iOS" in text
    assert "search.example.org" in text
    # One number style: ISO times, counts with separators, shares with %, no raw fractions.
    assert "first event  2024-10-10T" in text and "received     5,000" in text
    assert re.search(r"^  late         [\d,]+ \(more than 15m older than the newest line read before them", text, re.M)
    assert re.search(r"^  future       0 \(more than 300s ahead of this machine's clock", text, re.M)
    assert not re.search(r"\b0\.\d{4,}\b", text)
    assert re.search(r"^  10\.0\.\d+\.\d+\s+[\d,]+ error responses of [\d,]+ requests \(\d+\.\d%\)$", text, re.M)
    # Events are listed one per line with ISO times, not as JSON objects.
    events = text.split("events: ", 1)[1].splitlines()[1:]
    assert events and all(re.match(r"  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  \w+", line) for line in events
                          if not line.startswith("      "))
    assert not any(line.lstrip().startswith("{") for line in events)


def test_json_keeps_its_keys_and_adds_web(access_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = analyze_json(capsys, access_log, "--top", "3")
    for key in ("window", "received", "parsed", "rejected", "bytes", "http", "late", "future", "top"):
        assert key in out
    assert out["received"] == 5000 and out["http"]["requests"] == 5000
    web = out["web"]
    assert web["requests"] == 5000 and web["bytes"] == out["http"]["bytes_sent"]
    assert len(web["panels"]["hosts"]["rows"]) == 3 and len(web["panels"]["days"]["rows"]) == 3
    assert sum(r["hits"] for r in web["panels"]["days"]["rows"]) == 5000
    assert {r["key"] for r in web["panels"]["browsers"]["rows"]} <= {"Chrome", "Firefox", "curl", "Mobile Safari"}
    assert "web" not in analyze_json(capsys, access_log, "--no-web")


def _without_quantiles(web: dict) -> dict:
    """KLL sketches compact at random, so latency quantiles vary within their rank error."""
    for row in web["panels"]["endpoints"]["rows"]:
        for name in ("p50", "p95", "p99"):
            assert row.pop(name) is not None
    return web


def test_two_workers_give_the_same_report(access_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alone = _without_quantiles(analyze_json(capsys, access_log)["web"])
    assert _without_quantiles(analyze_json(capsys, access_log, "--workers", "2")["web"]) == alone


def embedded_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="logtally-data">(.*?)</script>', page, re.S)
    assert found, "no embedded data"
    return json.loads(found.group(1))


def test_html_is_one_offline_file_holding_the_json_answer(
    access_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page is the dashboard's template and script with every asset inlined and the result
    embedded; tests/test_dashboard.py opens it in a browser and reads the panels it draws."""
    page = tmp_path / "report.html"
    assert run_analyze([str(access_log), "--workers", "0", "--events", "--html", str(page)]) == 0
    capsys.readouterr()
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert not re.search(r"<script[^>]*\bsrc=|<img\b|@import|url\(", text, re.I)
    assert re.findall(r"<link\b[^>]*>", text) == ['<link rel="icon" href="data:,">']  # no icon to fetch
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text, re.I)
    assert "uPlot" in text and "renderWeb" in text  # the chart library and the dashboard's script
    data = embedded_data(text)
    out = analyze_json(capsys, access_log, "--events")
    assert _without_quantiles(data["web"]) == _without_quantiles(out["web"])
    assert data["top"] == out["top"] and data["events"] == out["events"]
    moving = ("http",)  # the latency quantiles: KLL sketches compact at random
    assert {k: v for k, v in data["report"].items() if k not in moving} == \
        {k: v for k, v in out.items() if k not in (*moving, "top", "web", "events")}
    assert data["paths"] == [str(access_log)]
    hours = data["trends"]["hour"]["series"]["lines"]
    assert data["trends"]["hour"]["step"] == 3600 and sum(v for _, v in hours) == out["received"] - out["late"]


def test_progress_bar_on_a_tty_and_nothing_on_a_pipe(access_log: Path) -> None:
    args = [sys.executable, "-m", "logtallyd", "analyze", str(access_log), "--workers", "0", "--json"]
    piped = subprocess.run(args, capture_output=True, text=True, timeout=120, env=ENV, cwd=ROOT)
    assert piped.returncode == 0 and piped.stderr == ""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, timeout=120, env=ENV, cwd=ROOT)
        os.close(slave)
        slave = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed and everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0 and json.loads(proc.stdout)["received"] == 5000
    screen = drawn.decode("utf-8", "replace")
    assert "analyze" in screen and "lines/s" in screen and "100%" in screen
    assert re.search(r"\d+(\.\d)? KiB", screen)


def test_agrees_with_goaccess(access_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    goaccess = require_tool("goaccess")
    out = tmp_path / "goaccess.json"
    # With its shipped goaccess.conf, whose static-file list the web report follows.
    subprocess.run([goaccess, str(access_log), "--log-format=COMBINED", "-o", str(out)],
                   check=True, capture_output=True, timeout=120)
    theirs = json.loads(out.read_text())
    ours = analyze_json(capsys, access_log, "--top", "100")
    web = ours["web"]
    assert theirs["general"]["total_requests"] == ours["received"] == web["requests"] == 5000
    assert theirs["general"]["bandwidth"] == web["bytes"]
    exact = theirs["general"]["unique_visitors"]
    assert abs(web["visitors"] - exact) <= 3 * web["visitors_rel_err"] * exact
    their_codes = {item["data"].split(" ", 1)[0]: item["hits"]["count"]
                   for group in theirs["status_codes"]["data"] for item in group["items"]}
    assert their_codes == {k: v for k, v in ours["http"]["by_status"].items()} == {
        row["key"]: row["hits"] for row in web["panels"]["status"]["rows"]}
    their_404 = {item["data"]: item["hits"]["count"] for item in theirs["not_found"]["data"]}
    assert their_404 == {row["key"]: row["hits"] for row in web["panels"]["not_found"]["rows"]}
    their_days = {item["data"]: (item["hits"]["count"], item["bytes"]["count"]) for item in theirs["visitors"]["data"]}
    assert their_days == {row["key"].replace("-", ""): (row["hits"], row["bytes"]) for row in web["panels"]["days"]["rows"]}
    their_hours = {item["data"]: item["hits"]["count"] for item in theirs["visit_time"]["data"]}
    assert their_hours == {row["key"]: row["hits"] for row in web["panels"]["hours"]["rows"]}
    their_static = {item["data"]: item["hits"]["count"] for item in theirs["static_requests"]["data"]}
    assert their_static == {row["key"]: row["hits"] for row in web["panels"]["static"]["rows"]}


def test_html_report_of_latencies_too_large_to_add_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Each latency is a finite double, their sum is not: the report must still be written
    # (JSON has no Infinity), and `request_time` seconds that overflow as milliseconds are no latency.
    log = tmp_path / "app.log"
    stamp = '"ts":"2025-02-01T10:00:0{}Z","level":"info","msg":"x","method":"GET","path":"/","status":200'
    log.write_text("".join("{" + stamp.format(i) + f',"{key}":{value}' + "}\n" for i, (key, value) in enumerate(
        [("latency_ms", "1e308"), ("latency_ms", "1e308"), ("request_time", "1e308"), ("latency_ms", "5")])))
    page = tmp_path / "report.html"
    assert run_analyze([str(log), "--workers", "0", "--html", str(page)]) == 0
    capsys.readouterr()
    latency = embedded_data(page.read_text())["report"]["http"]["latency_ms"]
    assert latency["count"] == 3 and latency["min"] == 5.0 and latency["max"] == 1e308
    assert latency["avg"] is None  # not a number a double holds
