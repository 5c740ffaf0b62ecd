"""`logtallyd analyze` / `validate` (logtallyd.offline.analyze) on generated files with known ground truth."""
from __future__ import annotations

import collections
import gzip
import json
import shutil
import time
from pathlib import Path

import pytest

from logtallyd.offline.analyze import analyze_paths, find_files, run_analyze, run_validate
from logtallyd.stats.windows import StatsConfig, quantile_rank_error

LEVELS = ["info", "info", "info", "warning", "error", "debug", "critical"]
METHODS = ["GET", "GET", "POST", "PUT", "DELETE"]
STATUSES = [200, 200, 200, 201, 301, 404, 404, 500, 503]
N = 6000
START = int(time.time()) - 3600  # an hour ago: nothing is "future"


def generate(path: Path) -> dict:
    """Write N JSON lines plus a few bad ones; return the ground truth."""
    truth: dict = {
        "level": collections.Counter(), "method": collections.Counter(), "status": collections.Counter(),
        "ip": collections.Counter(), "bad_ip": collections.Counter(), "error": collections.Counter(),
        "latency": [], "bytes_sent": 0,
    }
    names = {"info": "INFO", "warning": "WARNING", "error": "ERROR", "debug": "DEBUG", "critical": "CRIT"}
    with open(path, "w", encoding="utf-8") as f:
        for i in range(N):
            level = LEVELS[i % len(LEVELS)]
            method = METHODS[i % len(METHODS)]
            status = STATUSES[(i // 7) % len(STATUSES)]
            # three heavy hitters with distinct counts, then 300 addresses with few lines each
            ip = "10.9.9.1" if i % 6 == 0 else "10.9.9.2" if i % 6 == 1 else "10.9.9.3" if i % 12 == 2 \
                else f"172.16.{i % 300 // 256}.{i % 300 % 256}"
            latency = float(i % 1000 + 1)  # 1..1000 ms, six times each
            obj = {"ts": START + i * 0.1, "level": level, "service": f"svc{i % 3}", "host": f"node{i % 2}",
                   "ip": ip, "method": method, "path": f"/api/{i % 5}", "status": status,
                   "bytes": i % 100, "latency_ms": latency, "user_agent": "curl/8.5"}
            if level in ("error", "critical"):
                if i % 2:
                    obj["message"] = f"Database connection failed for user {i}"
                    truth["error"]["Database connection failed for user <*>"] += 1
                else:
                    obj["message"] = f"upstream 10.0.{i % 7}.1:8080 timed out after {i % 90}ms"
                    truth["error"]["upstream <*> timed out after <*>"] += 1
            else:
                obj["message"] = f"request {i} served"
            f.write(json.dumps(obj) + "\n")
            truth["level"][names[level]] += 1
            truth["method"][method] += 1
            truth["status"][str(status)] += 1
            truth["ip"][ip] += 1
            if status >= 400:
                truth["bad_ip"][ip] += 1
            truth["latency"].append(latency)
            truth["bytes_sent"] += i % 100
            if i % 1000 == 999:
                f.write("{not json\n\n")  # one invalid_json and one empty line per thousand
    truth["rejected"] = {"invalid_json": N // 1000, "empty": N // 1000}
    return truth


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("logs")
    truth = generate(root / "app.log")
    (root / "old").mkdir()
    with open(root / "app.log", "rb") as src, gzip.open(root / "old" / "app.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (root / "notes.txt").write_text("not a log: not matched by *.log*\n")
    return root, truth


def check_report(report: dict, tops: dict, truth: dict, copies: int) -> None:
    def times(counter: collections.Counter) -> dict:
        return {k: v * copies for k, v in counter.items()}

    bad_lines = sum(truth["rejected"].values())
    assert report["parsed"] == N * copies
    assert report["received"] == (N + bad_lines) * copies
    assert report["rejected"] == times(collections.Counter(truth["rejected"]))
    assert report["by_format"] == {"json": N * copies}
    assert report["by_level"] == times(truth["level"])
    assert report["errors"] == (truth["level"]["ERROR"] + truth["level"]["CRIT"]) * copies
    assert report["by_service"] == {"svc0": 2000 * copies, "svc1": 2000 * copies, "svc2": 2000 * copies}
    http = report["http"]
    assert http["requests"] == N * copies
    assert http["by_method"] == times(truth["method"])
    assert http["by_status"] == times(truth["status"])
    fives = truth["status"]["500"] + truth["status"]["503"]
    assert http["by_class"]["5xx"] == fives * copies
    assert http["rate_5xx"] == pytest.approx(fives / N)
    assert http["bytes_sent"] == truth["bytes_sent"] * copies
    assert report["first_ts"] == START and report["last_ts"] == pytest.approx(START + (N - 1) * 0.1)
    # Latency: min/max/avg exact; percentiles within the KLL bound (normalized rank error of one
    # query at 99% confidence, 1.33% for k=200): the true rank of the returned value is within
    # eps of the asked rank.
    lat = http["latency_ms"]
    values = sorted(truth["latency"])
    assert (lat["min"], lat["max"], lat["avg"]) == (1.0, 1000.0, pytest.approx(sum(values) / len(values)))
    eps = quantile_rank_error(StatsConfig())
    for name, rank in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        true_rank = sum(1 for v in values if v <= lat[name]) / len(values)
        assert abs(true_rank - rank) <= eps + 1 / len(values), (name, lat[name])
    # Top-N: exact (fewer distinct values than the sketch tracks)
    # (ties are listed by value)
    top_ips = [(r["value"], r["count"]) for r in tops["ip"]]
    assert top_ips == [("10.9.9.1", 1000 * copies), ("10.9.9.2", 1000 * copies), ("10.9.9.3", 500 * copies)]
    assert top_ips == [(ip, n * copies) for ip, n in sorted(truth["ip"].items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
    errors = {r["value"]: r["count"] for r in tops["error"]}
    assert errors == times(truth["error"])
    assert all(r["example"] for r in tops["error"])
    bad = tops["suspicious_ip"][0]
    ip, n = sorted(truth["bad_ip"].items(), key=lambda kv: (-kv[1], kv[0]))[0]
    assert (bad["value"], bad["count"]) == (ip, n * copies)
    assert bad["share"] == pytest.approx(n / truth["ip"][ip])


def test_find_files_recurses_for_log_files(corpus: tuple[Path, dict]) -> None:
    root, _ = corpus
    assert [p.relative_to(root).as_posix() for p in find_files([str(root)])] == ["app.log", "old/app.log.1.gz"]


def test_analyze_in_process_small_chunks(corpus: tuple[Path, dict]) -> None:
    root, truth = corpus
    # 4 KiB chunks: lines are cut across chunk boundaries all the time
    stats = analyze_paths([str(root / "app.log")], workers=0, chunk_bytes=4096)
    now = time.time()
    tops = {f: stats.top(f, 3, "all", now) for f in ("ip", "error", "suspicious_ip")}
    check_report(stats.report("all", now), tops, truth, copies=1)


def test_analyze_directory_with_gzip_in_two_workers(corpus: tuple[Path, dict]) -> None:
    root, truth = corpus
    stats = analyze_paths([str(root)], workers=2, chunk_bytes=64 << 10)
    now = time.time()
    tops = {f: stats.top(f, 3, "all", now) for f in ("ip", "error", "suspicious_ip")}
    check_report(stats.report("all", now), tops, truth, copies=2)


def test_run_analyze_json(corpus: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    root, truth = corpus
    assert run_analyze([str(root / "app.log"), "--json", "--workers", "0", "--top", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    check_report(out, out["top"], truth, copies=1)
    assert out["window"] == "all"


def test_run_analyze_table_and_missing_path(corpus: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = corpus
    assert run_analyze([str(root / "app.log"), "--workers", "0"]) == 0
    text = capsys.readouterr().out
    assert "received" in text and "6,012" in text and "top error:" in text
    assert run_analyze([str(root / "missing.log")]) == 2


def test_validate_lists_formats_and_first_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "mixed.log"
    log.write_text(
        '{"msg": "ok"}\n'
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed\n"
        "{broken\n"
        "\n"
        'Oct 11 22:14:15 mymachine su: ok\n'
        "{also broken\n"
    )
    assert run_validate([str(log), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["lines"] == 6
    assert out["by_format"] == {"json": 1, "rfc5424": 1, "rfc3164": 1}
    assert out["rejected"] == {"invalid_json": 2, "empty": 1}
    assert [(r["line"], r["reason"]) for r in out["first_rejected"]] == [
        (3, "invalid_json"), (4, "empty"), (6, "invalid_json")]
    good = tmp_path / "good.log"
    good.write_text('{"msg": "ok"}\n')
    assert run_validate([str(good)]) == 0
    assert "1 parsed, 0 rejected" in capsys.readouterr().out


def test_config_limits_and_merge_hook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "a.log"
    log.write_text('{"msg": "short"}\n' + '{"msg": "' + "x" * 200 + '"}\n' + '{"msg": "short again"}\n')
    config = tmp_path / "config.toml"
    config.write_text('[ingest]\nmax_message_bytes = 100\n[stats]\nwindows = {"10s" = 10}\n')
    assert run_analyze([str(log), "--json", "--workers", "0", "--config", str(config)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["received"], out["parsed"], out["rejected"]) == (3, 2, {"oversize": 1})
    bad = tmp_path / "bad.toml"
    bad.write_text("[stats]\nwindows = {all = 5}\n")
    assert run_analyze([str(log), "--config", str(bad)]) == 2
    seen: list[int] = []
    stats = analyze_paths([str(log)], workers=0, on_merge=lambda p, now: seen.append(p.received))
    assert sum(seen) == stats.received == 3


def _even_batches_slow(frames: list[bytes], arrival: float, options: object, seq: int = 0) -> bytes:
    """The worker function, with every even batch finishing last (runs in the pool)."""
    from logtallyd.pool.worker import process_batch

    if seq % 2 == 0:
        time.sleep(0.15)
    return process_batch(frames, arrival, options, seq)  # type: ignore[arg-type]


def test_results_merge_in_file_order_whichever_worker_finishes_first(tmp_path: Path) -> None:
    """What counts as late depends on the order of merges: a file must give one answer."""
    from logtallyd.pool.worker import WorkerOptions

    start = int(time.time()) - 3600
    lines = [json.dumps({"ts": start + i, "msg": "x" * 60}) for i in range(1000)]
    # Every 50th line is two hours old: late, since the lines before it set the anchor.
    lines = [json.dumps({"ts": start - 7200, "msg": "old"}) if i % 50 == 49 else line
             for i, line in enumerate(lines)]
    path = tmp_path / "a.log"
    path.write_text("\n".join(lines) + "\n")
    seen: list[int] = []
    stats = analyze_paths([str(path)], workers=2, batch_fn=_even_batches_slow, options=WorkerOptions(),
                          chunk_bytes=4096, on_result=lambda seq, result: seen.append(seq),
                          delimiter="any")  # "learn" would hold the first 64 KiB of 4 KiB chunks
    assert len(seen) > 10 and seen == sorted(seen)
    assert stats.late == 20


def test_absurd_sizes_and_times_leave_the_report_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 30-digit size or a 400-digit request time once made the batch's result unencodable (and
    `--json` print `Infinity`): now the line counts, its figure is unknown, the JSON is JSON."""
    def no_constants(name: str) -> None:
        raise AssertionError(f"not JSON: {name}")

    path = tmp_path / "access.log"
    path.write_text('10.0.0.1 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 ' + "9" * 30 + "\n"
                    '10.0.0.1 - - [01/Jan/2025:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "UA" ' + "1" * 400 + ".5\n"
                    '10.0.0.1 - - [01/Jan/2025:00:00:02 +0000] "GET / HTTP/1.1" 200 7 "-" "UA" 0.25\n')
    for workers in ("0", "1"):
        assert run_analyze([str(path), "--json", "--workers", workers]) == 0
        out = json.loads(capsys.readouterr().out, parse_constant=no_constants)
        assert (out["received"], out["parsed"], out["http"]["requests"]) == (3, 3, 3)
        assert out["http"]["bytes_sent"] == 12
        assert (out["http"]["latency_ms"]["count"], out["http"]["latency_ms"]["max"]) == (1, 250.0)
