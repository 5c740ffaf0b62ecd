"""Per-format micro-benchmark of `logtallyd.parsing.parse_line`: lines/s on one core.

Each format gets a few thousand varied, realistic lines (seeded, generated here); every run
parses all of them, the figure is the median of several runs. Run: `python bench/parse.py`
(`--runs N`, `--lines N`). Not a test: numbers depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logtallyd.parsing import parse_line  # noqa: E402

REF_TS = 1764000000.0  # 2025-11-24
HOSTS = [f"web{i:02d}.example.com" for i in range(20)]
APPS = ["nginx", "sshd", "cron", "postgres", "api", "billing", "kernel"]
WORDS = ("connection from user request accepted closed timeout retry cache miss hit queue "
         "worker started stopped failed to open file checksum ok").split()
PATHS = ["/", "/index.html", "/api/v1/users/42", "/static/app.js?v=3", "/login", "/healthz"]
UAS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
       "curl/8.5.0", "Go-http-client/1.1"]
LEVELS = ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"]


def _msg(r: random.Random) -> str:
    return " ".join(r.choice(WORDS) for _ in range(r.randint(4, 12))) + f" id={r.randint(1, 99999)}"


def _ip(r: random.Random) -> str:
    return f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def _clock(r: random.Random, i: int) -> tuple[int, int, int, int]:
    """A day and time that advance like a live stream (same hour for many lines)."""
    secs = 12 * 3600 + i // 4
    return 30, secs // 3600 % 24, secs // 60 % 60, secs % 60


def make_lines(fmt: str, n: int, seed: int = 1) -> list[str]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        day, h, m, s = _clock(r, i)
        host, app, msg = r.choice(HOSTS), r.choice(APPS), _msg(r)
        if fmt == "rfc5424":
            sd = r.choice(["-", f'[meta seq="{i}" src="{_ip(r)}"]', f'[origin ip="{_ip(r)}"][x@1 a="b\\"c"]'])
            out.append(f"<{r.randint(0, 191)}>1 2025-01-{day}T{h:02d}:{m:02d}:{s:02d}.{r.randint(0, 999999):06d}Z "
                       f"{host} {app} {r.randint(1, 65535)} ID{r.randint(1, 50)} {sd} {msg}")
        elif fmt == "rfc3164":
            out.append(f"<{r.randint(0, 191)}>Jan {day} {h:02d}:{m:02d}:{s:02d} {host} {app}[{r.randint(1, 65535)}]: {msg}")
        elif fmt == "json":
            out.append(f'{{"timestamp":"2025-01-{day}T{h:02d}:{m:02d}:{s:02d}.{r.randint(0, 999):03d}Z",'
                       f'"level":"{r.choice(LEVELS).lower()}","service":"{app}","host":"{host}",'
                       f'"message":"{msg}","request_id":"{r.getrandbits(64):016x}","user":{{"id":{i}}}}}')
        elif fmt == "access":
            out.append(f'{_ip(r)} - - [{day}/Jan/2025:{h:02d}:{m:02d}:{s:02d} +0000] "GET {r.choice(PATHS)} HTTP/1.1" '
                       f'{r.choice([200, 200, 200, 301, 404, 500])} {r.randint(0, 50000)} "-" "{r.choice(UAS)}" '
                       f'0.{r.randint(0, 999):03d}')
        elif fmt == "app":
            out.append(f"2025-01-{day} {h:02d}:{m:02d}:{s:02d},{r.randint(0, 999):03d} {r.choice(LEVELS)} "
                       f"[{app}] com.example.{app}.Handler: {msg}")
        elif fmt == "nested":
            access = (f'{_ip(r)} - - [{day}/Jan/2025:{h:02d}:{m:02d}:{s:02d} +0000] "GET {r.choice(PATHS)} HTTP/1.1" '
                      f'200 {r.randint(0, 50000)} "-" "{r.choice(UAS)}"')
            out.append(f"<190>Jan {day} {h:02d}:{m:02d}:{s:02d} {host} nginx: {access}")
        elif fmt == "raw":
            out.append(msg if r.random() < 0.8 else msg + " error")
        else:
            raise ValueError(fmt)
    return out


FORMATS = ["rfc5424", "rfc3164", "json", "access", "app", "nested", "raw"]


def measure(lines: list[str], runs: int) -> tuple[float, float]:
    """(median, best) lines/s over `runs` passes; CPU time of this process, so other
    processes competing for the core slow it less than wall-clock time would."""
    rates = []
    for _ in range(runs):
        t0 = time.process_time()
        for line in lines:
            parse_line(line, REF_TS)
        rates.append(len(lines) / (time.process_time() - t0))
    return statistics.median(rates), max(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--lines", type=int, default=5000)
    args = ap.parse_args()
    sets = {fmt: make_lines(fmt, args.lines) for fmt in FORMATS}
    for fmt, lines in sets.items():  # every line must come out as its own format
        got = parse_line(lines[0], REF_TS)
        assert getattr(got, "format", None) == ("rfc3164" if fmt == "nested" else fmt), (fmt, got)
    mixed = [line for group in zip(*sets.values()) for line in group]
    extra = [("mixed", mixed)]
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "loghub-2k"
    if corpus.is_dir():  # real lines: 8 Loghub samples (app, rfc3164 file lines, raw)
        real = [line for f in sorted(corpus.glob("*/*_2k.log"))
                for line in f.read_text(encoding="utf-8", errors="replace").splitlines()]
        extra.append(("loghub-16k", real))
    print(f"parse_line, one core (process CPU time), median of {args.runs} runs x {args.lines} lines per format")
    print(f"{'format':<10} {'lines/s':>10} {'us/line':>8} {'best/s':>10}")
    for fmt, lines in list(sets.items()) + extra:
        rate, best = measure(lines, args.runs)
        print(f"{fmt:<10} {rate:>10,.0f} {1e6 / rate:>8.2f} {best:>10,.0f}")


if __name__ == "__main__":
    main()
