"""`logtallyd analyze` against GoAccess on combined access logs, low and high cardinality.

    python bench/goaccess.py [--runs 3] [--low 600000] [--high 2000000] [--workers 2]

Generates two combined-format logs (low: 400 IPs, 207 paths, 5 user agents; high: a new IP on
most lines), then, interleaved per run, times `goaccess --log-format=COMBINED -o x.json` and
`logtallyd analyze --json` on each, with the peak RSS of each process tree (VmHWM summed). Checks
that both report the same total requests and status counts, and prints medians and the ratio
GoAccess time / logtallyd time (> 1: logtallyd is faster), by wall clock and by CPU seconds (the
steadier figure on a shared box). `--baseline DIR` runs another checkout's logtallyd in the same
runs, for before/after figures.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
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


CPU: list[float] = []  # CPU seconds (user + sys, the whole process tree) of each command measured


def measure(cmd: list[str], **kw) -> tuple[float, int, str]:
    """(wall seconds, peak RSS of the process tree in KiB, stdout) of one command; its CPU
    seconds are appended to CPU (children's usage counts once they are waited for, so the
    pool workers of analyze are included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with status {proc.returncode}")
    return elapsed, peak, out[0] if out else ""


def goaccess(log: Path, folder: Path) -> tuple[float, int, dict]:
    out = folder / "x.json"
    elapsed, peak, _ = measure(["goaccess", str(log), "--log-format=COMBINED", "-o", str(out),
                                "--no-global-config"])
    return elapsed, peak, json.loads(out.read_text())


def logtallyd(log: Path, workers: int, root: Path = ROOT) -> tuple[float, int, dict]:
    # A machine that has run logtallyd before holds its bytecode caches: a shell that turns them
    # off (PYTHONDONTWRITEBYTECODE) would add ~40 ms of compiling to every run.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(root)}
    elapsed, peak, out = measure([sys.executable, "-m", "logtallyd", "analyze", str(log), "--json",
                                  "--workers", str(workers)], env=env, cwd=root)
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
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="also run the logtallyd of another checkout (DIR holds its logtallyd package), interleaved")
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
        tools = ["goaccess", "logtallyd"] + (["baseline"] if args.baseline else [])
        figures: dict[str, dict[str, list[tuple[float, int, float]]]] = {k: {t: [] for t in tools} for k in kinds}
        for run in range(args.runs):
            for kind in kinds:
                results = {"goaccess": goaccess(logs[kind], folder) + (CPU[-1],)}
                results["logtallyd"] = logtallyd(logs[kind], args.workers) + (CPU[-1],)
                if args.baseline:
                    results["baseline"] = logtallyd(logs[kind], args.workers, args.baseline) + (CPU[-1],)
                for tool in tools[1:]:
                    problem = agree(results["goaccess"][2], results[tool][2])
                    if problem:
                        print(f"{kind} run {run + 1}: {tool} MISMATCH {problem}")
                        return 1
                g = results["goaccess"]
                line = f"{kind} run {run + 1}: goaccess {g[0]:.2f} s (cpu {g[3]:.2f} s) {g[1] / 1024:.0f} MB"
                for tool in tools:
                    wall, peak, _, cpu = results[tool]
                    figures[kind][tool].append((wall, peak, cpu))
                    if tool != "goaccess":
                        line += (f", {tool} {wall:.2f} s (cpu {cpu:.2f} s) {peak / 1024:.0f} MB, "
                                 f"ratio {g[0] / wall:.2f}")
                print(line + f"; {results['logtallyd'][2]['http']['requests']:,} requests agree", flush=True)
        print(f"load: {os.getloadavg()}")
        for kind in kinds:
            g = figures[kind]["goaccess"]
            for tool in tools[1:]:
                t = figures[kind][tool]
                ratios = [a[0] / b[0] for a, b in zip(g, t)]
                cpu_ratios = [a[2] / b[2] for a, b in zip(g, t)]
                print(f"{kind} median: goaccess {statistics.median(x[0] for x in g):.2f} s "
                      f"(cpu {statistics.median(x[2] for x in g):.2f} s) {statistics.median(x[1] for x in g) / 1024:.0f} MB, "
                      f"{tool} {statistics.median(x[0] for x in t):.2f} s (cpu {statistics.median(x[2] for x in t):.2f} s) "
                      f"{statistics.median(x[1] for x in t) / 1024:.0f} MB; speed ratio goaccess/{tool} "
                      f"{statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}), "
                      f"cpu ratio {statistics.median(cpu_ratios):.2f}, memory ratio "
                      f"{statistics.median(x[1] for x in t) / statistics.median(x[1] for x in g):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
