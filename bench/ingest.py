"""End-to-end ingest benchmark: logtallyd against rsyslog on the same input, in the same run.

    python bench/ingest.py [--lines 1000000] [--connections 4] [--runs 3] [--workers N] [--only logtally]
                           [--baseline OTHER_CHECKOUT]

Generates realistic mixed lines (RFC 5424, RFC 3164, combined access log with latency, app lines,
JSON), sends them over K TCP connections, and times until STATS shows every line received and
accounted for (parsed + rejected). rsyslog (Debian package; imtcp with octet-counted framing off,
omfile) gets the same bytes; its time is until its output file holds every line. Prints lines/s,
peak RSS (logtallyd's main process + workers), per process (main, forkserver, resource tracker,
workers) the RSS when idle, the peak RSS and the peak PSS (shared pages split among the processes
that share them: the honest sum for a forked tree), CPU time per line of logtallyd's main process and of
its pool workers (a figure that other load on a shared box disturbs far less than lines/s), and
the ratio logtally/rsyslog; medians over runs. `--only logtally` skips rsyslog (no ratio).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def generate(n: int, seed: int = 1, start: int | None = None) -> bytes:
    """`n` lines of five formats in turn, 1,000 a second of event time from `start` (default:
    ending a minute before now, as a live stream is stamped: every line falls in the windows and
    the RFC 3164 lines, which carry no year, read as this year's)."""
    rng = random.Random(seed)
    if start is None:
        start = int(time.time()) - n // 1000 - 60
    services = ["api", "auth", "billing", "search", "web"]
    paths = ["/", "/login", "/api/v1/items", "/api/v1/users/42", "/static/app.js", "/health"]
    agents = ["curl/8.0", "Mozilla/5.0 (X11; Linux x86_64)", "Go-http-client/1.1", "python-requests/2.31"]
    out = []
    stamps: tuple[str, str, str, str] = ("", "", "", "")
    for i in range(n):
        kind = i % 5
        if i % 1000 == 0:  # a new second: its stamps in each format
            tm = time.gmtime(start + i // 1000)
            clock = f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
            day = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
            stamps = (f"{day}T{clock}", f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {clock}",
                      f"{tm.tm_mday:02d}/{MONTHS[tm.tm_mon - 1]}/{tm.tm_year:04d}:{clock}", f"{day} {clock}")
        iso, bsd, clf, app = stamps
        svc = rng.choice(services)
        if kind == 0:
            out.append(
                f"<{rng.choice((134, 131, 132))}>1 {iso}.{i % 1000:03d}Z "
                f"host{i % 7} {svc} {1000 + i % 50} ID{i % 9} [meta seq=\"{i}\"] request {i} handled"
            )
        elif kind == 1:
            out.append(f"<{rng.choice((30, 27))}>{bsd} host{i % 7} {svc}[{200 + i % 30}]: "
                       f"session {i} opened for user u{i % 100}")
        elif kind == 2:
            ip = f"10.{i % 4}.{(i // 7) % 256}.{i % 251}"
            status = rng.choice((200, 200, 200, 201, 304, 404, 500))
            out.append(
                f'{ip} - - [{clf} +0000] "GET {rng.choice(paths)} HTTP/1.1" '
                f'{status} {rng.randint(100, 9000)} "-" "{rng.choice(agents)}" {rng.random() / 10:.3f}'
            )
        elif kind == 3:
            level = rng.choice(("INFO", "INFO", "WARN", "ERROR", "DEBUG"))
            out.append(f"{app},{i % 1000:03d} {level} [{svc}] "
                       f"Database connection failed for user {i % 97}")
        else:
            out.append(json.dumps({
                "ts": f"{iso}Z", "level": rng.choice(("info", "error")),
                "service": svc, "msg": f"job {i} finished", "duration_ms": rng.randint(1, 500),
            }))
    return ("\n".join(out) + "\n").encode()


def split_connections(data: bytes, k: int) -> list[bytes]:
    lines = data.splitlines(keepends=True)
    return [b"".join(lines[i::k]) for i in range(k)]


def send_parallel(address: tuple[str, int], parts: list[bytes]) -> None:
    def one(part: bytes) -> None:
        with socket.create_connection(address) as sock:
            view = memoryview(part)
            for i in range(0, len(view), 1 << 18):
                sock.sendall(view[i : i + (1 << 18)])

    threads = [threading.Thread(target=one, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (forkserver: the pool workers are grandchildren)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_tree(pid: int) -> tuple[float, float]:
    """(CPU seconds of `pid` itself, CPU seconds of all its descendants)."""
    return cpu_seconds(pid), sum(cpu_seconds(p) for p in process_tree(pid)[1:])


def rss_tree_kb(pid: int) -> int:
    """Peak RSS (VmHWM) of a process and its children, in KiB."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def role_of(pid: int) -> str:
    """A short name for one process of the daemon's tree: main, resource_tracker, forkserver or
    worker (a child of the forkserver, which runs the same command line)."""
    args = _cmdline(pid)
    if "resource_tracker" in args:
        return "resource_tracker"
    if "forkserver" in args:
        return "worker" if "forkserver" in _cmdline(_ppid(pid)) else "forkserver"
    return "main"


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and Pss (shared pages split among their sharers) of one process."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


class MemorySampler:
    """Per-process memory of a process tree: RSS at the start (idle), and peak RSS and peak PSS
    sampled while the run goes. The tree's true footprint is the PSS sum: forked workers share
    their parent's pages, which a sum of RSS counts once per process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.idle = {p: memory_kb(p) for p in process_tree(pid)}
        self.roles = {p: role_of(p) for p in self.idle}
        self.peak_pss: dict[int, int] = {}
        self.peak_tree_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.sample()

    def sample(self) -> None:
        total = 0
        for p in process_tree(self.pid):
            pss = memory_kb(p).get("Pss", 0)
            total += pss
            self.peak_pss[p] = max(self.peak_pss.get(p, 0), pss)
            self.roles.setdefault(p, role_of(p))
        self.peak_tree_pss = max(self.peak_tree_pss, total)

    def finish(self) -> dict[str, dict[str, int]]:
        """role -> {idle_rss, peak_rss, peak_pss} in KiB (workers summed), plus "tree"."""
        self._stop.set()
        self._thread.join()
        self.sample()
        out: dict[str, dict[str, int]] = {}
        for p, role in self.roles.items():
            now = memory_kb(p)
            row = out.setdefault(role, {"n": 0, "idle_rss": 0, "peak_rss": 0, "peak_pss": 0})
            row["n"] += 1
            row["idle_rss"] += self.idle.get(p, {}).get("VmRSS", 0)
            row["peak_rss"] += now.get("VmHWM", 0)
            row["peak_pss"] += self.peak_pss.get(p, 0)
        out["tree"] = {"n": len(self.roles), "idle_rss": sum(r["idle_rss"] for r in out.values()),
                       "peak_rss": sum(r["peak_rss"] for r in out.values()), "peak_pss": self.peak_tree_pss}
        return out


def format_memory(memory: dict[str, dict[str, int]]) -> str:
    return "; ".join(f"{role}{'' if row['n'] == 1 or role == 'tree' else ' x' + str(row['n'])} idle {row['idle_rss'] / 1024:.0f} "
                     f"peak {row['peak_rss'] / 1024:.0f} (PSS {row['peak_pss'] / 1024:.0f})"
                     for role, row in sorted(memory.items(), key=lambda kv: kv[0] == "tree"))


def control(address: tuple[str, int], command: str, token: str | None = None) -> dict:
    """One command's answer; with `token`, AUTH first (privileged commands need it over TCP)."""
    with socket.create_connection(address) as sock:
        reader = sock.makefile("rb")
        if token is not None:
            sock.sendall(f"AUTH {token}\n".encode())
            assert json.loads(reader.readline()) == {"auth": "ok"}
        sock.sendall(command.encode() + b"\n")
        return json.loads(reader.readline())


def run_logtally(
    data: bytes, n: int, k: int, workdir: Path, workers: int, root: Path = ROOT
) -> tuple[float, int, dict, tuple[float, float], dict[str, dict[str, int]]]:
    config = workdir / "config.toml"
    config.write_text(f'[rejects]\npath = "{workdir / "rejects.log"}"\n[state]\ndirectory = ""\n'
                      f'[pipeline]\nworkers = {workers}\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "logtallyd", "--config", str(config), "--tcp", "127.0.0.1:0", "--udp", "",
         "--control", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    addresses = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "listening":
            addresses = entry
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    tcp = tuple(addresses["tcp"].rsplit(":", 1))
    ctl = tuple(addresses["control"].rsplit(":", 1))
    tcp_addr, ctl_addr = (tcp[0], int(tcp[1])), (ctl[0], int(ctl[1]))
    parts = split_connections(data, k)
    deadline = time.time() + 10  # idle figures once the pool's workers are up
    while time.time() < deadline and sum(role_of(p) == "worker" for p in process_tree(proc.pid)) < workers:
        time.sleep(0.05)
    memory = MemorySampler(proc.pid)
    main0, workers0 = cpu_tree(proc.pid)
    started = time.perf_counter()
    send_parallel(tcp_addr, parts)
    while True:
        report = control(ctl_addr, "STATS")
        if report["received"] >= n:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    main1, workers1 = cpu_tree(proc.pid)
    rss = rss_tree_kb(proc.pid)
    figures = memory.finish()
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    return elapsed, rss, report, (main1 - main0, workers1 - workers0), figures


RSYSLOG_CONF = """\
global(workDirectory="{work}")
module(load="imtcp" MaxSessions="200")
input(type="imtcp" port="{port}" address="127.0.0.1" SupportOctetCountedFraming="off" ruleset="out")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="out") {{ action(type="omfile" file="{out}" template="raw" asyncWriting="on" ioBufferSize="1m" flushOnTXEnd="off") }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_rsyslog(data: bytes, n: int, k: int, workdir: Path) -> tuple[float, int] | None:
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not Path(rsyslogd).exists():
        subprocess.run(["apt-get", "install", "-y", "-qq", "rsyslog"], capture_output=True)
        if not Path(rsyslogd).exists():
            return None
    port = free_port()
    out = workdir / "rsyslog.out"
    conf = workdir / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(work=workdir, port=port, out=out))
    proc = subprocess.Popen([rsyslogd, "-n", "-f", str(conf), "-i", str(workdir / "rsyslog.pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.05)
    parts = split_connections(data, k)
    started = time.perf_counter()
    send_parallel(("127.0.0.1", port), parts)
    lines = 0
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            with out.open("rb") as f:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except OSError:
            lines = 0
        if lines >= n:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    rss = rss_tree_kb(proc.pid)
    proc.terminate()
    proc.wait(30)
    if lines < n:
        print(f"rsyslog wrote {lines}/{n} lines", file=sys.stderr)
    return elapsed, rss


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="[pipeline] workers")
    parser.add_argument("--baseline", type=Path, help="also run the daemon of this checkout (with a `logtallyd` "
                        "link to its server/) in each run, to compare two versions in the same conditions")
    parser.add_argument("--only", choices=("logtally", "rsyslog"), help="run one side only (no ratio)")
    args = parser.parse_args()
    data = generate(args.lines)
    print(f"input: {args.lines} lines, {len(data) / 1e6:.1f} MB, {args.connections} connections, {args.runs} runs")
    ours: list[tuple[float, int]] = []
    theirs: list[tuple[float, int]] = []
    cpu_us: list[tuple[float, float]] = []  # CPU µs per line: (main process, pool workers)
    memories: list[dict[str, dict[str, int]]] = []
    baseline: list[tuple[float, float, float, int]] = []  # lines/s, CPU µs/line main, workers, peak RSS KiB
    for run in range(args.runs):
        if args.baseline is not None:
            with tempfile.TemporaryDirectory() as tmp:
                elapsed, rss, _, (cpu_main, cpu_workers), memory = run_logtally(
                    data, args.lines, args.connections, Path(tmp), args.workers, args.baseline.resolve()
                )
            baseline.append((args.lines / elapsed, cpu_main / args.lines * 1e6, cpu_workers / args.lines * 1e6, rss))
            print(f"run {run + 1}: baseline {baseline[-1][0]:,.0f} lines/s, peak RSS {rss / 1024:.0f} MiB, "
                  f"CPU/line main {baseline[-1][1]:.1f} µs + workers {baseline[-1][2]:.1f} µs")
            print(f"  memory MiB: {format_memory(memory)}")
        if args.only != "rsyslog":
            with tempfile.TemporaryDirectory() as tmp:
                elapsed, rss, report, (cpu_main, cpu_workers), memory = run_logtally(
                    data, args.lines, args.connections, Path(tmp), args.workers
                )
            memories.append(memory)
            ours.append((args.lines / elapsed, rss))
            cpu_us.append((cpu_main / args.lines * 1e6, cpu_workers / args.lines * 1e6))
            print(f"run {run + 1}: logtally {args.lines / elapsed:,.0f} lines/s, peak RSS {rss / 1024:.0f} MiB, "
                  f"CPU/line main {cpu_us[-1][0]:.1f} µs + workers {cpu_us[-1][1]:.1f} µs, "
                  f"parsed {report['parsed']}, rejected {sum(report['rejected'].values())}")
            print(f"  memory MiB: {format_memory(memory)}")
        if args.only == "logtally":
            continue
        with tempfile.TemporaryDirectory() as tmp:
            result = run_rsyslog(data, args.lines, args.connections, Path(tmp))
            if result is not None:
                theirs.append((args.lines / result[0], result[1]))
                print(f"run {run + 1}: rsyslog {args.lines / result[0]:,.0f} lines/s, peak RSS {result[1] / 1024:.0f} MiB")
    if ours:
        med_ours = statistics.median(r for r, _ in ours)
        print(f"\nlogtally median: {med_ours:,.0f} lines/s, peak RSS median {statistics.median(m for _, m in ours) / 1024:.0f} MiB, "
              f"CPU/line median main {statistics.median(c for c, _ in cpu_us):.1f} µs + workers "
              f"{statistics.median(c for _, c in cpu_us):.1f} µs")
        roles = memories[0].keys()
        median = {role: {key: int(statistics.median(m[role][key] for m in memories if role in m))
                         for key in ("n", "idle_rss", "peak_rss", "peak_pss")} for role in roles}
        print(f"logtally memory medians MiB: {format_memory(median)}")
    if baseline:
        print(f"baseline median: {statistics.median(b[0] for b in baseline):,.0f} lines/s, peak RSS median "
              f"{statistics.median(b[3] for b in baseline) / 1024:.0f} MiB, CPU/line median main "
              f"{statistics.median(b[1] for b in baseline):.1f} µs + workers {statistics.median(b[2] for b in baseline):.1f} µs")
        if theirs:
            ratios = [b[0] / t[0] for b, t in zip(baseline, theirs)]
            print(f"ratio baseline/rsyslog: median {statistics.median(ratios):.2f} "
                  f"(per run: {', '.join(f'{r:.2f}' for r in ratios)})")
    if theirs and not ours:
        print(f"rsyslog median: {statistics.median(r for r, _ in theirs):,.0f} lines/s")
    if theirs and ours:
        med_theirs = statistics.median(r for r, _ in theirs)
        ratios = [o[0] / t[0] for o, t in zip(ours, theirs)]
        print(f"rsyslog median: {med_theirs:,.0f} lines/s, peak RSS median {statistics.median(m for _, m in theirs) / 1024:.0f} MiB")
        print(f"ratio logtally/rsyslog: median {statistics.median(ratios):.2f} (per run: {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
