"""Issue 4 acceptance: one answer, live or batch.

A generated file with known ground truth (five formats, exact counts per level, method, status,
service and host; latency values whose percentiles are known exactly; a known set of top IPs,
user agents, paths and error templates) is analysed by `logtallyd analyze --json` (a subprocess)
and streamed over TCP to a real server. Counts must be exact, quantiles within the stated KLL
bound, and `STATS all` / every `TOP` list of the server must equal what `analyze` printed.
A second file holds lines far out of order and in the future: they are counted, not windowed.
"""
from __future__ import annotations

import collections
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from logtallyd.offline.analyze import analyze_paths
from logtallyd.daemon.config import load_config
from logtallyd.stats.templates import path_template
from logtallyd.stats.windows import StatsConfig, quantile_rank_error
from tests.conftest import ROOT, ServerProcess, send_tcp

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
TOP_FIELDS = ("ip", "user_agent", "path", "service", "host", "status", "error", "suspicious_ip")
CONFIG = "[pipeline]\nworkers = 2\n"

# Error messages and the template each must be counted under ("user 42" and "user 7" are one).
ERRORS: list[tuple[str, str]] = [
    ("Database connection failed for user {n}", "Database connection failed for user <*>"),
    ("Timeout after {ms} ms calling payments at 10.2.{a}.{b}:8443", "Timeout after <*> calling payments at <*>"),
    ("Payment {uuid} declined for card 0x{hex}", "Payment <*> declined for card <*>"),
    ("File /var/data/batch-{n}.csv not found", "File <*> not found"),
    ("Invalid value '{word}' for field \"{field}\"", "Invalid value <*> for field <*>"),
    ("worker {n} crashed with exit code {code}", "worker <*> crashed with exit code <*>"),
]
# An access line with a 5xx status is an ERROR record whose message is the whole line.
JSON_LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR", "critical": "CRIT"}
APP_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "ERROR": "ERROR"}
SEVERITIES = ("EMERG", "ALERT", "CRIT", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")  # RFC 5424 §6.2.1

HEAVY_IPS = {  # distinct counts, so the top-10 order is known
    "203.0.113.10": 1500, "203.0.113.11": 1100, "2001:db8::7": 900, "198.51.100.23": 700,
    "203.0.113.12": 560, "192.0.2.200": 430, "198.51.100.66": 390, "10.20.30.40": 310,
    "172.16.5.5": 250, "192.0.2.9": 205,
}
AGENTS = {"curl/8.5.0": 4100, "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0": 3300,
          "python-requests/2.31": 2000, "Googlebot/2.1 (+http://www.google.com/bot.html)": 1500,
          "kube-probe/1.29": 700, "Wget/1.21": 400}
HOT_PATHS = {"/": 2300, "/api/orders": 1900, "/api/login": 1500, "/static/app.js": 1200,
             "/healthz": 1000, "/api/search": 800}
N_ACCESS = 12000  # the rest of the paths are /item/<n>, each once: more than the old sketches tracked
METHODS = {"GET": 7000, "POST": 2500, "PUT": 1000, "DELETE": 800, "PATCH": 500, "HEAD": 200}
STATUSES = {200: 6400, 201: 900, 204: 300, 301: 400, 304: 500, 400: 300, 401: 250, 403: 200,
            404: 1500, 429: 150, 500: 700, 502: 250, 503: 150}
LATENCY_REPEAT = 12  # every latency 1..1000 ms occurs exactly 12 times: p50 500, p95 950, p99 990
N_JSON, N_5424, N_3164, N_APP = 6000, 3000, 2000, 2000
N_INVALID_JSON, N_EMPTY = 13, 7
SPAN_S = 600


def exact(counts: dict[Any, int], rng: random.Random) -> list[Any]:
    """A shuffled list holding each key exactly `counts[key]` times."""
    out = [key for key, n in counts.items() for _ in range(n)]
    rng.shuffle(out)
    return out


def error_message(rng: random.Random, kind: int) -> str:
    text, _ = ERRORS[kind]
    return text.format(
        n=rng.randrange(1, 100000), ms=rng.choice([500, 1000, 3000]), a=rng.randrange(256),
        b=rng.randrange(256), uuid="%08x-%04x-4%03x-8%03x-%012x" % (
            rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12), rng.getrandbits(12),
            rng.getrandbits(48)),
        hex="%06x" % rng.getrandbits(24), word=rng.choice(["abc", "x y", "-1", ""]),
        field=rng.choice(["name", "email", "zip"]), code=rng.choice([1, 137, 139]),
    )


class Truth:
    def __init__(self) -> None:
        self.counters: dict[str, collections.Counter[Any]] = collections.defaultdict(collections.Counter)
        self.examples: dict[str, str] = {}
        self.latency: list[float] = []
        self.ts: list[float] = []
        self.bytes = 0
        self.bytes_sent = 0
        self.lines: list[str] = []

    def count(self, name: str, value: Any) -> None:
        self.counters[name][value] += 1

    def error(self, template: str, message: str) -> None:
        self.count("error", template)
        message = message[:200]
        if template not in self.examples or message < self.examples[template]:
            self.examples[template] = message


def generate(start: int, seed: int = 4) -> Truth:
    """Every line of the file, in event-time order over SPAN_S seconds, with its ground truth."""
    rng = random.Random(seed)
    truth = Truth()
    kinds = exact({"access": N_ACCESS, "json": N_JSON, "rfc5424": N_5424, "rfc3164": N_3164, "app": N_APP}, rng)
    n = len(kinds)
    ips = exact({**HEAVY_IPS, **_spread("10.77", N_ACCESS - sum(HEAVY_IPS.values()), 12)}, rng)
    agents = exact(AGENTS, rng)
    paths = exact({**HOT_PATHS, **{f"/item/{i}": 1 for i in range(N_ACCESS - sum(HOT_PATHS.values()))}}, rng)
    methods = exact(METHODS, rng)
    statuses = exact(STATUSES, rng)
    latencies = exact({ms: LATENCY_REPEAT for ms in range(1, 1001)}, rng)
    services = exact({"api": 2400, "billing": 1500, "auth": 1000, "search": 700, "mailer": 400}, rng)
    json_levels = exact({"info": 3000, "debug": 1200, "warning": 900, "error": 700, "critical": 200}, rng)
    json_hosts = exact({"web-1": 2500, "web-2": 2000, "db-1": 1000, "db-2": 500}, rng)
    counters = collections.Counter[str]()

    def next_of(seq: list[Any], name: str) -> Any:
        i = counters[name]
        counters[name] += 1
        return seq[i]

    bad_at = set(rng.sample(range(100, n), N_INVALID_JSON + N_EMPTY))
    bad = exact({"{not json": N_INVALID_JSON, "": N_EMPTY}, rng)
    for i, kind in enumerate(kinds):
        ms = start * 1000 + i * SPAN_S * 1000 // n + rng.randrange(SPAN_S * 1000 // n)
        sec, frac = divmod(ms, 1000)
        tm = time.gmtime(sec)
        truth.count("format", kind)
        if kind == "access":
            ip, agent, path = next_of(ips, "ip"), next_of(agents, "ua"), next_of(paths, "path")
            method, status, latency = next_of(methods, "m"), next_of(statuses, "s"), next_of(latencies, "l")
            nbytes = "-" if status == 304 else str(rng.randrange(0, 50000))
            clf = f"{tm.tm_mday:02d}/{MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:{time.strftime('%H:%M:%S', tm)} +0000"
            # Apache %D: the request time in microseconds, after the user agent.
            line = f'{ip} - - [{clf}] "{method} {path} HTTP/1.1" {status} {nbytes} "-" "{agent}" {latency * 1000}'
            ts, level = float(sec), "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
            for name, value in (("ip", ip), ("user_agent", agent), ("path", path), ("method", method),
                                ("status", str(status))):
                truth.count(name, value)
            if status >= 400:
                truth.count("suspicious_ip", ip)
            if status >= 500:
                # A failed request counts under the request itself (logtallyd.stats.templates.record_template).
                truth.error(f"{method} {path_template(path)} {status}", line)
            truth.latency.append(float(latency))
            truth.bytes_sent += 0 if nbytes == "-" else int(nbytes)
            service = host = None
        elif kind == "json":
            word = next_of(json_levels, "jl")
            level, service, host = JSON_LEVELS[word], next_of(services, "svc"), next_of(json_hosts, "jh")
            ts = ms / 1000
            if level in ("ERROR", "CRIT"):
                k = rng.randrange(len(ERRORS))
                message = error_message(rng, k)
                truth.error(ERRORS[k][1], message)
            else:
                message = f"request {rng.randrange(10**6)} served in {rng.randrange(1, 900)} ms"
            line = json.dumps({"ts": ts, "level": word, "service": service, "host": host, "message": message})
        elif kind == "rfc5424":
            severity = rng.choice([2, 3, 3, 4, 5, 6, 6, 6, 7])
            level, service, host = SEVERITIES[severity], rng.choice(["billing", "kernel", "nginx"]), rng.choice(["web-1", "edge-1"])
            ts = ms / 1000
            if severity <= 3:
                k = rng.randrange(len(ERRORS))
                message = error_message(rng, k)
                truth.error(ERRORS[k][1], message)
            else:
                message = f"session {rng.randrange(10**6)} opened"
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", tm) + f".{frac:03d}Z"
            line = f"<{16 * 8 + severity}>1 {stamp} {host} {service} {rng.randrange(1, 99999)} - - {message}"
        elif kind == "rfc3164":
            severity = rng.choice([3, 4, 6, 6, 6, 7])
            level, service, host = SEVERITIES[severity], rng.choice(["cron", "sshd", "postfix/smtpd"]), rng.choice(["mx-1", "web-2"])
            ts = float(sec)
            if severity <= 3:
                message = error_message(rng, 5)
                truth.error(ERRORS[5][1], message)
            else:
                message = f"job {rng.randrange(10**6)} done"
            stamp = f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {time.strftime('%H:%M:%S', tm)}"
            line = f"<{3 * 8 + severity}>{stamp} {host} {service}[{rng.randrange(1, 99999)}]: {message}"
        else:
            word = rng.choice(["DEBUG", "INFO", "INFO", "WARN", "ERROR"])
            level, service, host = APP_LEVELS[word], rng.choice(["payments", "worker"]), None
            ts = ms / 1000
            if level == "ERROR":
                k = rng.randrange(len(ERRORS))
                message = error_message(rng, k)
                truth.error(ERRORS[k][1], message)
            else:
                message = f"batch {rng.randrange(10**6)} committed"
            line = time.strftime("%Y-%m-%d %H:%M:%S", tm) + f",{frac:03d} {word} [{service}] {message}"
        truth.count("level", level)
        if service is not None:
            truth.count("service", service)
        if host is not None:
            truth.count("host", host)
        truth.ts.append(ts)
        truth.lines.append(line)
        if i in bad_at:
            truth.lines.append(bad.pop())
    truth.counters["rejected"] = collections.Counter(
        {"invalid_json": N_INVALID_JSON, "empty": N_EMPTY})
    truth.bytes = sum(len(line.encode()) for line in truth.lines)
    return truth


def _spread(prefix: str, total: int, each: int) -> dict[str, int]:
    """`total` lines over addresses that have at most `each` lines apiece."""
    out: dict[str, int] = {}
    i = 0
    while total > 0:
        out[f"{prefix}.{i // 250}.{i % 250}"] = min(each, total)
        total -= each
        i += 1
    return out


def ranked(counter: collections.Counter[Any], n: int = 10) -> list[tuple[Any, int]]:
    """Most frequent first, ties by value (the order TOP uses)."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def run_analyze(path: Path, config: Path, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "logtallyd", "analyze", str(path), "--json", "--config", str(config), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(out.stdout)


class Run:
    """One file, analysed in batch and streamed to a server: both answers and the truth."""

    def __init__(self, truth: Truth, path: Path, analyzed: dict[str, Any], stats: dict[str, Any],
                 tops: dict[str, list[dict[str, Any]]], windows: dict[str, Any]) -> None:
        self.truth = truth
        self.path = path
        self.analyzed = analyzed
        self.stats = stats
        self.tops = tops
        self.windows = windows  # "1m"/"5m": STATS, and "top 5m": every TOP list of 5m


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("one_answer")
    start = int(time.time()) - 3600  # an hour ago: nothing is in the future
    truth = generate(start)
    data = ("\n".join(truth.lines) + "\n").encode()
    path = root / "app.log"
    path.write_bytes(data)
    (root / "config.toml").write_text(CONFIG)
    analyzed = run_analyze(path, root / "config.toml", "--workers", "2", "--top", "10")
    workdir = root / "server"
    workdir.mkdir()
    server = ServerProcess(workdir, CONFIG)
    try:
        send_tcp(server.address("tcp"), data)
        server.wait_received(len(truth.lines))
        stats = server.stats("all")
        tops = {field: server.command(f"TOP {field} 10 all")["top"] for field in TOP_FIELDS}
        windows: dict[str, Any] = {w: server.stats(w) for w in ("1m", "5m")}
        windows["top 5m"] = {field: server.command(f"TOP {field} 10 5m")["top"] for field in TOP_FIELDS}
    finally:
        server.stop()
    yield Run(truth, path, analyzed, stats, tops, windows)


def check_counts(report: dict[str, Any], truth: Truth) -> None:
    c = truth.counters
    parsed = sum(c["format"].values())
    rejected = sum(c["rejected"].values())
    assert report["received"] == parsed + rejected == len(truth.lines)
    assert report["parsed"] == parsed
    assert report["rejected"] == dict(c["rejected"])
    assert report["bytes"] == truth.bytes
    assert report["by_format"] == dict(c["format"])
    assert report["by_level"] == dict(c["level"])
    errors = c["level"]["ERROR"] + c["level"]["CRIT"]
    assert report["errors"] == errors
    assert report["error_rate"] == errors / parsed
    assert report["by_service"] == dict(c["service"])
    assert report["by_host"] == dict(c["host"])
    assert report["approximate"] == {}
    for field in ("ip", "user_agent", "path", "service", "host"):  # HLL: within its stated bounds
        d = report["distinct"][field]
        assert d["lower"] <= len(c[field]) <= d["upper"], (field, d, len(c[field]))
    assert (report["late"], report["future"]) == (0, 0)
    assert report["first_ts"] == pytest.approx(min(truth.ts), abs=1e-6)
    assert report["last_ts"] == pytest.approx(max(truth.ts), abs=1e-6)
    span = int(max(truth.ts)) - int(min(truth.ts)) + 1
    assert report["lines_per_s"] == pytest.approx(parsed / span)
    http = report["http"]
    assert http["requests"] == N_ACCESS
    assert http["by_method"] == METHODS
    assert http["by_status"] == {str(s): n for s, n in sorted(STATUSES.items())}
    classes = collections.Counter[str]()
    for status, n in STATUSES.items():
        classes[f"{status // 100}xx"] += n
    assert http["by_class"] == dict(classes)
    assert http["rate_5xx"] == classes["5xx"] / N_ACCESS
    assert http["bytes_sent"] == truth.bytes_sent


def check_latency(latency: dict[str, Any], truth: Truth) -> None:
    """min/max/avg exact; each percentile within the KLL bound: the true rank of the value
    reported lies within eps (normalized rank error, 99% confidence) of the rank asked for."""
    values = sorted(truth.latency)
    n = len(values)
    assert latency["count"] == n
    assert (latency["min"], latency["max"]) == (1.0, 1000.0)
    assert latency["avg"] == pytest.approx(math.fsum(values) / n, rel=1e-12)
    # The known distribution: nearest-rank percentiles of 1..1000 ms, each 12 times.
    assert [values[math.ceil(q * n) - 1] for q in (0.5, 0.95, 0.99)] == [500.0, 950.0, 990.0]
    eps = quantile_rank_error(StatsConfig())
    assert 0.01 < eps < 0.02  # k = 200: 1.33 %
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        v = latency[name]
        below = sum(1 for x in values if x < v) / n
        upto = sum(1 for x in values if x <= v) / n
        # some rank in [below, upto] (the value's ranks) must be within eps of q
        assert below - eps <= q <= upto + eps, (name, v, below, upto)
        assert abs(v - values[math.ceil(q * n) - 1]) <= eps * 1000 + 1, (name, v)


def check_tops(tops: dict[str, list[dict[str, Any]]], truth: Truth) -> None:
    c = truth.counters
    # Every field's distinct values fit `[stats] exact_keys`: every count is exact.
    for field in ("ip", "user_agent", "path", "service", "host", "error", "suspicious_ip"):
        got = [(row["value"], row["count"]) for row in tops[field]]
        assert got == ranked(c[field]), field
        assert all("approximate" not in row and "lower" not in row for row in tops[field]), field
    assert [(r["value"], r["count"]) for r in tops["status"]] == ranked(c["status"])
    assert [r["value"] for r in tops["ip"]] == list(HEAVY_IPS)
    # Templates: every error message grouped under its known template, with the smallest
    # message as the example.
    # Failed HTTP requests count under their request (`GET /api/login 500`), one template per
    # endpoint and status, so they rank below the message templates here.
    assert {t for _, t in ERRORS} <= {r["value"] for r in tops["error"]}
    assert {r["value"]: r["example"] for r in tops["error"]} == {
        r["value"]: truth.examples[r["value"]] for r in tops["error"]
    }
    for row in tops["suspicious_ip"]:
        assert row["requests"] == c["ip"][row["value"]]
        assert row["share"] == row["count"] / c["ip"][row["value"]]
    assert [r["value"] for r in tops["path"][:len(HOT_PATHS)]] == list(HOT_PATHS)


def test_generated_truth_is_what_it_says() -> None:
    truth = generate(1_700_000_000)
    assert sum(truth.counters["format"].values()) == N_ACCESS + N_JSON + N_5424 + N_3164 + N_APP
    # more than the lg-10 sketches of old tracked exactly, fewer than `[stats] exact_keys`
    assert 768 < len(truth.counters["path"]) <= StatsConfig().exact_keys
    assert sorted(truth.counters["ip"].values())[-11] < min(HEAVY_IPS.values())
    assert ranked(truth.counters["ip"]) == list(HEAVY_IPS.items())


def test_analyze_counts_exactly(run: Run) -> None:
    check_counts(run.analyzed, run.truth)
    assert run.analyzed["window"] == "all"


def test_analyze_quantiles_within_the_kll_bound(run: Run) -> None:
    check_latency(run.analyzed["http"]["latency_ms"], run.truth)


def test_analyze_top_lists(run: Run) -> None:
    check_tops(run.analyzed["top"], run.truth)


def test_server_counts_and_quantiles(run: Run) -> None:
    check_counts(run.stats, run.truth)
    check_latency(run.stats["http"]["latency_ms"], run.truth)
    check_tops(run.tops, run.truth)


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A STATS report without what only a server has (or only analyze: `web`) and without the
    sketch-estimated figures."""
    out = {k: v for k, v in report.items() if k not in (
        "connections", "peers", "http_server", "pipeline", "subscribers", "udp", "detect", "uptime_s",
        "rejects_file", "top", "web", "job_failures", "archive", "control", "history", "cluster")}
    latency = dict(out["http"]["latency_ms"])
    for key in ("p50", "p95", "p99", "avg"):
        latency.pop(key)
    out["http"] = {**out["http"], "latency_ms": latency}
    return out


def test_stats_all_equals_analyze(run: Run) -> None:
    assert comparable(run.stats) == comparable(run.analyzed)
    assert run.stats["http"]["latency_ms"]["avg"] == pytest.approx(
        run.analyzed["http"]["latency_ms"]["avg"], rel=1e-12)


def test_every_top_list_equals_analyze(run: Run) -> None:
    for field in TOP_FIELDS:
        assert run.tops[field] == run.analyzed["top"][field], field


def test_windows_equal_a_replay(run: Run) -> None:
    """The file spans 10 minutes: `1m` and `5m` hold a part of it, the same part either way."""
    stats = analyze_paths([str(run.path)], workers=2, stats_config=StatsConfig())
    at = time.time()
    for window in ("1m", "5m"):
        live, batch = run.windows[window], stats.report(window, at)
        assert 0 < live["parsed"] <= run.stats["parsed"] // 2, window
        # Rejected lines have no event time: each batch files them at its newest second, and
        # the server cuts batches elsewhere than `analyze` does, so a rejected line near a
        # window's edge may fall on either side. Everything else is equal.
        for report in (live, batch):
            assert report["received"] == report["parsed"] + sum(report["rejected"].values())
        rejected_lines = ("received", "rejected", "bytes")
        assert ({k: v for k, v in comparable(live).items() if k not in rejected_lines}
                == {k: v for k, v in comparable(batch).items() if k not in rejected_lines}), window
    for field in TOP_FIELDS:
        live_top, batch_top = run.windows["top 5m"][field], stats.top(field, 10, "5m", at)
        assert live_top == batch_top, field
    assert [r["value"] for r in run.windows["top 5m"]["path"][:len(HOT_PATHS)]] == list(HOT_PATHS)


# -- out of order and future ------------------------------------------------------------------


def json_line(ts: float, level: str, service: str, message: str = "tick") -> str:
    return json.dumps({"ts": ts, "level": level, "service": service, "host": "h1", "message": message})


def test_late_and_future_lines_are_counted_and_kept_out_of_windows(tmp_path: Path) -> None:
    now = int(time.time())
    t0 = now - 1800
    steady = [json_line(t0 + i / 10, "error" if i % 10 == 0 else "info", "api") for i in range(3000)]
    late = [json_line(t0 - 7200 + i, "error", "ghost") for i in range(50)]  # two hours before
    future = [json_line(now + 86400 + i, "error", "tomorrow") for i in range(20)]  # a bad clock
    nearly = [json_line(t0 + 250 + i / 10, "warning", "api") for i in range(10)]  # within the horizon
    tail = [json_line(t0 + 300 + i / 10, "info", "api") for i in range(100)]
    second_part: list[str] = []
    for i in range(50):
        second_part.append(late[i])
        if i < 20:
            second_part.append(future[i])
        if i < 10:
            second_part.append(nearly[i])
    second_part += tail
    lines = steady + second_part
    path = tmp_path / "disorder.log"
    path.write_text("\n".join(lines) + "\n")
    newest = t0 + 309  # of the lines that are neither late nor in the future

    def check(report: dict[str, Any], window: str) -> None:
        assert (report["late"], report["future"]) == (50, 20), window
        assert report["anchor"] == newest, window  # the future did not move the windows
        if window == "all":
            assert report["parsed"] == len(lines)
            assert report["by_service"] == {"api": 3110, "ghost": 50, "tomorrow": 20}
            assert report["first_ts"] == t0 - 7200  # seen, counted ...
            assert report["last_ts"] == pytest.approx(t0 + 309.9)  # ... but no future stamp
            return
        width = {"1m": 60, "5m": 300, "15m": 900}[window]
        lo = newest - width + 1
        inside = [i for i in range(3000) if t0 + i // 10 >= lo]
        n_nearly = 10 if t0 + 250 >= lo else 0
        assert report["parsed"] == len(inside) + n_nearly + 100, window
        assert report["by_service"] == {"api": len(inside) + n_nearly + 100}, window
        assert report["by_level"] == {
            k: v for k, v in (
                ("ERROR", sum(1 for i in inside if i % 10 == 0)),
                ("WARNING", n_nearly),
                ("INFO", sum(1 for i in inside if i % 10) + 100),
            ) if v
        }, window
        assert report["first_ts"] == pytest.approx(t0 + inside[0] / 10), window
        assert report["last_ts"] == pytest.approx(t0 + 309.9), window

    # Batch: the file in one go, in three processes (merged in file order).
    stats = analyze_paths([str(path)], workers=2, stats_config=load_config(None).stats, chunk_bytes=64 << 10)
    at = time.time()
    batch = {w: stats.report(w, at) for w in ("all", "1m", "5m", "15m")}
    for window, report in batch.items():
        check(report, window)
    assert [r["value"] for r in stats.top("service", 5, "15m", at)] == ["api"]
    # Live: the steady part first (so the anchor is set), then the disorder.
    server = ServerProcess(tmp_path, CONFIG)
    try:
        send_tcp(server.address("tcp"), ("\n".join(steady) + "\n").encode())
        server.wait_received(len(steady))
        send_tcp(server.address("tcp"), ("\n".join(second_part) + "\n").encode())
        server.wait_received(len(lines))
        live = {w: server.stats(w) for w in ("all", "1m", "5m", "15m")}
        top_15m = server.command("TOP service 5 15m")["top"]
        top_all = server.command("TOP service 5 all")["top"]
    finally:
        server.stop()
    for window, report in live.items():
        check(report, window)
        assert comparable(report) == comparable(batch[window]), window
    assert [r["value"] for r in top_15m] == ["api"]
    assert [r["value"] for r in top_all] == ["api", "ghost", "tomorrow"]
