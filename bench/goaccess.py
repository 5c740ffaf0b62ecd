"""`logtallyd analyze` against GoAccess on combined access logs, low and high cardinality.

    python bench/goaccess.py [--runs 3] [--low 600000] [--high 2000000] [--workers 2]

Generates two combined-format logs (low: 400 IPs, 207 paths, 5 user agents; high: a new IP on
most lines), then, interleaved per run, times `goaccess --log-format=COMBINED -o x.json` and
`logtallyd analyze --json` on each, with the peak RSS of each process tree (VmHWM summed). Checks
that both report the same total requests and status counts, and prints medians and the ratio
GoAccess time / logtallyd time (> 1: logtallyd is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import rss_tree_kb  # noqa: E402

METHODS = ["GET"] * 8 + ["POST", "HEAD"]
STATUSES = [200] * 14 + [301, 304, 404, 404, 500, 403]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def generate(path: Path, lines: int, high: bool, seed: int = 1) -> int:
    """Write `lines` combined lines, one second apart from 2025-03-01; returns the byte size."""
    rng = random.Random(seed)
    paths = [f"/static/{kind}/{i}.{ext}" for i, (kind, ext) in
             enumerate([("css", "css"), ("js", "js"), ("img", "png")] * 50)]
    paths += [f"/article/{i}" for i in range(57)]  # 207 paths in all
    start = 1740787200  # 2025-03-01T00:00:00Z
    ips_low = [f"10.{i // 256}.{i % 256}.{(i * 7) % 250 + 1}" for i in range(400)]
    out: list[str] = []
    size = 0
    with open(path, "w", encoding="ascii") as f:
        for n in range(lines):
            t = time.gmtime(start + n // 10)
            stamp = f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
            if high:
                ip = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                url = f"/item/{rng.randrange(200_000)}?ref={rng.randrange(1000)}"
                # 500 user agents: ua-parser readings are cached per string (8192), as a real
                # site sees thousands of clients but far fewer distinct browsers.
                agent = f"{rng.choice(AGENTS)} build/{rng.randrange(100)}"
            else:
                ip = rng.choice(ips_low)
                url = rng.choice(paths)
                agent = rng.choice(AGENTS)
            status = rng.choice(STATUSES)
            out.append(f'{ip} - - [{stamp}] "{rng.choice(METHODS)} {url} HTTP/1.1" {status} '
                       f'{rng.randrange(200, 50000)} "https://example.com/" "{agent}"\n')
            if len(out) >= 10000:
                chunk = "".join(out)
                size += len(chunk)
                f.write(chunk)
                out.clear()
        chunk = "".join(out)
        size += len(chunk)
        f.write(chunk)
    return size


def measure(cmd: list[str], **kw) -> tuple[float, int, str]:
    """(wall seconds, peak RSS of the process tree in KiB, stdout) of one command."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **kw)
    peak = 0
    # Reading stdout in a thread would be cleaner; the outputs here are small, and polling the
    # tree's VmHWM every 50 ms needs the loop anyway.
    import threading

    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    while proc.poll() is None:
        peak = max(peak, rss_tree_kb(proc.pid))
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    reader.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with status {proc.returncode}")
    return elapsed, peak, out[0] if out else ""


def goaccess(log: Path, folder: Path) -> tuple[float, int, dict]:
    out = folder / "x.json"
    elapsed, peak, _ = measure(["goaccess", str(log), "--log-format=COMBINED", "-o", str(out),
                                "--no-global-config"])
    return elapsed, peak, json.loads(out.read_text())


def logtallyd(log: Path, workers: int) -> tuple[float, int, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    elapsed, peak, out = measure([sys.executable, "-m", "logtallyd", "analyze", str(log), "--json",
                                  "--workers", str(workers)], env=env, cwd=ROOT)
    return elapsed, peak, json.loads(out)


def agree(ga: dict, lt: dict) -> str:
    """'' when total requests and status counts agree, else what differs."""
    ga_total = ga["general"]["total_requests"]
    ga_status: dict[int, int] = {}
    for group in ga["status_codes"]["data"]:
        for item in group.get("items", []):
            code = int(item["data"].split()[0])
            ga_status[code] = ga_status.get(code, 0) + item["hits"]["count"]
    lt_status = {int(k): v for k, v in lt["http"]["by_status"].items()}
    problems = []
    if ga_total != lt["http"]["requests"]:
        problems.append(f"requests goaccess {ga_total} != logtallyd {lt['http']['requests']}")
    if ga_status != lt_status:
        problems.append(f"status goaccess {ga_status} != logtallyd {lt_status}")
    return "; ".join(problems)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--low", type=int, default=600_000, help="lines of the low-cardinality log")
    ap.add_argument("--high", type=int, default=2_000_000, help="lines of the high-cardinality log")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", choices=["low", "high"], help="run one of the two logs")
    args = ap.parse_args()
    if shutil.which("goaccess") is None:
        print("goaccess is not installed (Debian: apt-get install goaccess)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kinds = [k for k in ("low", "high") if args.only in (None, k)]
        logs = {}
        for kind in kinds:
            logs[kind] = folder / f"{kind}.log"
            size = generate(logs[kind], args.low if kind == "low" else args.high, kind == "high")
            print(f"{kind}: {args.low if kind == 'low' else args.high:,} lines, {size / 1e6:.0f} MB")
        figures: dict[str, dict[str, list[tuple[float, int]]]] = {k: {"goaccess": [], "logtallyd": []} for k in kinds}
        for run in range(args.runs):
            for kind in kinds:
                g = goaccess(logs[kind], folder)
                t = logtallyd(logs[kind], args.workers)
                problem = agree(g[2], t[2])
                if problem:
                    print(f"{kind} run {run + 1}: MISMATCH {problem}")
                    return 1
                figures[kind]["goaccess"].append(g[:2])
                figures[kind]["logtallyd"].append(t[:2])
                print(f"{kind} run {run + 1}: goaccess {g[0]:.2f} s {g[1] / 1024:.0f} MB, "
                      f"logtallyd {t[0]:.2f} s {t[1] / 1024:.0f} MB, ratio {g[0] / t[0]:.2f}; "
                      f"{t[2]['http']['requests']:,} requests agree")
        print(f"load: {os.getloadavg()}")
        for kind in kinds:
            g_t = statistics.median(x[0] for x in figures[kind]["goaccess"])
            t_t = statistics.median(x[0] for x in figures[kind]["logtallyd"])
            g_m = statistics.median(x[1] for x in figures[kind]["goaccess"]) / 1024
            t_m = statistics.median(x[1] for x in figures[kind]["logtallyd"]) / 1024
            ratios = [g[0] / t[0] for g, t in zip(figures[kind]["goaccess"], figures[kind]["logtallyd"])]
            print(f"{kind} median: goaccess {g_t:.2f} s {g_m:.0f} MB, logtallyd {t_t:.2f} s {t_m:.0f} MB; "
                  f"speed ratio (goaccess/logtallyd) {statistics.median(ratios):.2f} "
                  f"({', '.join(f'{r:.2f}' for r in ratios)}), memory ratio {t_m / g_m:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
