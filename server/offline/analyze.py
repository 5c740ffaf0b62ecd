"""Batch analysis of log files: `logtallyd analyze` and `logtallyd validate`.

`analyze` is the live pipeline without sockets: files (plain or gzip, directories searched
recursively for `*.log*`) are read in chunks, cut into frames by the same RFC 6587 `Framer`,
grouped into batches by the same `Batcher`, parsed in a process pool by the same worker function
(map: batch -> `Partial`), and merged in order through the same `Reorder` into the same `Stats`
(reduce). So `analyze` prints what `STATS all` would show had the files been sent over TCP.
Memory is bounded by batch size x batches in flight, whatever the file size.

`validate` parses every line in this process and lists, per file, the lines per format and the
first rejected lines with their reasons and line numbers.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import gzip
import json
import os
import re
import sys
import time
from pathlib import Path

import msgspec
from typing import IO, Any, Callable, Iterator

from logtallyd.stats.aggregate import Partial
from logtallyd.ingest.batching import Batch, Batcher
from logtallyd.ingest.framing import FrameError, Framer
from logtallyd.ingest.pressure import InFlight
from logtallyd.ingest.reorder import Reorder
from logtallyd.pool.worker import start_worker
from logtallyd.stats.windows import Stats, StatsConfig

CHUNK_BYTES = 256 << 10  # read size; a batch is cut at this many bytes of frames
BATCH_LINES = 4000  # as `[pipeline] batch_lines`
MAX_MESSAGE_BYTES = 65536  # as `[ingest] max_message_bytes`: longer lines are `oversize`
_GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952 §2.3.1

# A batch function: (frames, arrival, options) -> encoded `logtallyd.pool.worker.BatchResult`.
BatchFn = Callable[[list[bytes], float, Any], bytes]


# What logrotate and our archive leave: x.log, x.log.1, x.log.2.gz, x.log-20250130(.gz). Not
# x.log_structured.csv or x.log.bak.
_LOG_NAME = re.compile(r"\.log(?:[.-]\d+)?(?:\.gz)?$")


def find_files(paths: list[str]) -> list[Path]:
    """Files named on the command line, and log files (`*.log`, rotated, gzipped) under directories."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*.log*") if p.is_file() and _LOG_NAME.search(p.name)))
        else:
            out.append(path)
    return out


def _open(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(raw file for progress, reader of decompressed bytes)."""
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == _GZIP_MAGIC:
        return raw, gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw, raw


def read_batches(
    path: Path, max_message_bytes: int = MAX_MESSAGE_BYTES, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[list[bytes], list[FrameError], int]]:
    """(frames, framing errors, raw bytes read so far) per chunk of one file, streamed."""
    raw, reader = _open(path)
    framer = Framer(max_message_bytes)
    with raw, reader:
        while True:
            chunk = reader.read(chunk_bytes)
            if not chunk:
                break
            frames, errors = framer.feed(chunk)
            yield frames, errors, raw.tell()
        frames, errors = framer.close()
        yield frames, errors, raw.tell()


def default_batch_fn() -> tuple[BatchFn, Any]:
    """The server's own worker function and its default options."""
    from logtallyd.pool.worker import WorkerOptions, process_batch

    return process_batch, WorkerOptions()


def _decode(result: bytes) -> Any:
    from logtallyd.pool.worker import decode_result

    return decode_result(result)


class Progress:
    """One self-overwriting stderr line, only when stderr is a terminal."""

    def __init__(self, total_bytes: int, enabled: bool) -> None:
        self.total = max(total_bytes, 1)
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done_bytes: int, lines: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        rate = lines / max(now - self.started, 1e-9)
        sys.stderr.write(f"\r{100 * done_bytes / self.total:5.1f}%  {lines:,} lines  {rate:,.0f} lines/s ")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class _InProcess(cf.Executor):
    """`--workers 0`: each batch runs when submitted, so the loop below serves both cases."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def analyze_paths(
    paths: list[str],
    *,
    workers: int = 1,
    stats_config: StatsConfig | None = None,
    batch_fn: BatchFn | None = None,
    options: Any = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    batch_lines: int = BATCH_LINES,
    clock: Callable[[], float] = time.time,
    progress: bool = False,
    on_merge: Callable[[Partial, float], None] | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> Stats:
    """Map every batch of every file to a `Partial` in `workers` processes (0: in this process),
    reduce them into one `Stats`. `on_merge(partial, now)` sees every partial after it is merged;
    `on_result(batch number, BatchResult)` sees each worker result (detectors, as the server's
    `Pipeline.on_result`)."""
    if batch_fn is None:
        batch_fn, default_options = default_batch_fn()
        options = default_options if options is None else options
    files = find_files(paths)
    stats = Stats(stats_config or StatsConfig(), clock())
    meter = Progress(sum(p.stat().st_size for p in files if p.exists()), progress)
    done_before = 0  # raw bytes of the files already finished

    def merge(partial: Partial) -> None:
        now = clock()
        stats.merge(partial, now)
        if on_merge is not None:
            on_merge(partial, now)

    # The daemon's cores: batches are cut by size only (a file is read faster than any deadline),
    # a bounded number are unmerged at a time (memory is bounded by batch size x that bound,
    # whatever the file size), and results merge in stream order whichever worker finishes first:
    # what counts as `late` (and where rejected lines are filed) depends on the order of merges,
    # and a file must give the same report on every run and with any number of workers.
    batcher = Batcher(batch_lines, chunk_bytes, batch_delay_s=0.0)
    flight: InFlight[Batch] = InFlight(2 * workers or 1)  # 2 per worker keeps every worker busy
    reorder: Reorder[tuple[Batch, bytes]] = Reorder()
    running: dict[cf.Future[bytes], Batch] = {}
    # Framing errors merge just before the batch numbered as the one open when they were found.
    errors_before: dict[int, list[FrameError]] = collections.defaultdict(list)

    def merge_errors(seq: int) -> None:
        errors = errors_before.pop(seq, None)
        if errors:
            partial = Partial()
            for error in errors:
                partial.reject(error.reason, error.size)
            merge(partial)

    def start(pool: cf.Executor) -> None:
        for batch in flight.start():
            running[pool.submit(batch_fn, batch.frames, batch.arrival, options, batch.seq)] = batch

    def collect(pool: cf.Executor) -> None:
        """Wait for at least one batch, merge what the reorder buffer releases."""
        finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for future in finished:
            batch = running.pop(future)
            for ready, data in reorder.put(batch.seq, (batch, future.result())):
                merge_errors(ready.seq)
                result = _decode(data)
                merge(Partial.from_bytes(result.partial))
                if on_result is not None:
                    on_result(ready.seq, result)
                flight.finish()
        start(pool)

    pool: cf.Executor = cf.ProcessPoolExecutor(max_workers=workers, initializer=start_worker) if workers else _InProcess()
    with pool:
        for path in files:
            size = 0
            for frames, errors, size in read_batches(path, max_message_bytes, chunk_bytes):
                if errors:
                    errors_before[batcher.next_seq].extend(errors)
                flight.queue(batcher.add(frames, str(path), "file", clock()))
                start(pool)
                while flight.ready:
                    collect(pool)
                meter.update(done_before + size, stats.received)
            done_before += size
        flight.queue(batcher.flush())
        start(pool)
        while running:
            collect(pool)
    merge_errors(batcher.next_seq)
    meter.update(done_before, stats.received, force=True)
    meter.done()
    return stats


# -- output ----------------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    """A readable rendering of a STATS report (the JSON object, as tables)."""
    lines: list[str] = []

    def section(title: str, rows: dict[str, Any]) -> None:
        if not rows:
            return
        lines.append(f"{title}:")
        width = max(len(str(k)) for k in rows)
        for key, value in rows.items():
            lines.append(f"  {str(key):<{width}}  {_fmt(value)}")

    http = report["http"]
    section("lines", {
        "received": report["received"], "parsed": report["parsed"],
        "rejected": sum(report["rejected"].values()), "bytes": report["bytes"],
        "errors": report["errors"], "error rate": report["error_rate"],
        "first event": _ts(report["first_ts"]), "last event": _ts(report["last_ts"]),
        "lines/s": report["lines_per_s"], "late": report["late"], "future": report["future"],
    })
    section("rejected", report["rejected"])
    section("notes", report.get("notes", {}))
    section("by format", report["by_format"])
    section("by level", report["by_level"])
    section("by service", report["by_service"])
    section("by host", report["by_host"])
    if http["requests"]:
        section("http", {"requests": http["requests"], "5xx rate": http["rate_5xx"],
                         "bytes sent": http["bytes_sent"]})
        section("by method", http["by_method"])
        section("by status class", http["by_class"])
        section("by status", http["by_status"])
        section("latency ms", {k: v for k, v in http["latency_ms"].items()})
    return "\n".join(lines)


def format_top(title: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"top {title}: (none)"
    out = [f"top {title}:"]
    for row in rows:
        extra = ""
        if "example" in row:
            extra = f"   e.g. {row['example']}"
        elif "requests" in row:
            extra = f"   of {row['requests']} requests"
        out.append(f"  {row['count']:>10,}  {_fmt(row['share']):>7}  {row['value']}{extra}")
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))


# -- commands --------------------------------------------------------------------------------


def run_analyze(argv: list[str]) -> int:
    """`logtallyd analyze PATH... [--json] [--workers N] [--top N]`."""
    ap = argparse.ArgumentParser(prog="logtallyd analyze", description="Statistics of log files.")
    ap.add_argument("paths", nargs="+", metavar="PATH", help="files, .gz files or directories")
    ap.add_argument("--json", action="store_true", help="print the STATS `all` object as JSON")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="worker processes (0: parse in this process)")
    ap.add_argument("--top", type=int, default=10, metavar="N", help="entries per top-N table")
    ap.add_argument("--config", metavar="FILE",
                    help="config.toml: [stats], [parse], [detect] and the max message size")
    ap.add_argument("--events", action="store_true",
                    help="also run the anomaly detectors and list their events (as the server would)")
    args = ap.parse_args(argv)
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        print(f"logtallyd analyze: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.workers < 0:
        print("logtallyd analyze: --workers must be >= 0", file=sys.stderr)
        return 2
    from logtallyd.daemon.config import ConfigError, load_config
    from logtallyd.pool.worker import WorkerOptions

    try:
        config = load_config(args.config)  # None: the built-in defaults, as the daemon's
    except ConfigError as exc:
        print(f"logtallyd analyze: {exc}", file=sys.stderr)
        return 2
    settings: dict[str, Any] = {
        "stats_config": config.stats,
        "options": WorkerOptions(parse=config.parse, detect=config.detect),
        "max_message_bytes": config.ingest.max_message_bytes,
        "batch_lines": config.pipeline.batch_lines,
    }
    events: list[Any] = []
    driver = None
    if args.events:
        from logtallyd.detect.engine import Engine
        from logtallyd.detect.feed import Feed
        from logtallyd.detect.driver import Driver

        driver = Driver(Engine(config.detect), config.pipeline.event_lateness_s, config.stats.max_future_s)

        def detect(seq: int, result: Any) -> None:
            assert driver is not None
            events.extend(driver.add(Feed.from_bytes(result.feed), 0.0))

        settings["on_result"] = detect
    stats = analyze_paths(args.paths, workers=args.workers, progress=sys.stderr.isatty(), **settings)
    if driver is not None:
        events.extend(driver.finish())
    now = time.time()
    report = stats.report("all", now)
    fields = ("ip", "user_agent", "path", "service", "host", "status", "error", "suspicious_ip")
    tops = {field: stats.top(field, args.top, "all", now) for field in fields}
    if args.json:
        extra = {"events": [msgspec.to_builtins(e) for e in events]} if args.events else {}
        print(json.dumps({**report, "top": tops, **extra}))
    else:
        print(format_report(report))
        for field, rows in tops.items():
            if rows:
                print(format_top(field, rows))
        if args.events:
            print(f"events ({len(events)}):")
            for event in events:
                print("  " + json.dumps(msgspec.to_builtins(event)))
    return 0


class FileCheck:
    """What `validate` found in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        self.by_format: collections.Counter[str] = collections.Counter()
        self.rejected: collections.Counter[str] = collections.Counter()
        self.examples: list[tuple[int, str, str]] = []  # (line number, reason, line)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "lines": self.lines, "by_format": dict(self.by_format),
            "rejected": dict(self.rejected),
            "first_rejected": [{"line": n, "reason": r, "text": t} for n, r, t in self.examples],
        }


def validate_file(
    path: Path, parse: Callable[[str, float, Any], Any], options: Any, max_examples: int = 10,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> FileCheck:
    """Parse every frame of a file; line numbers count frames (LF-terminated lines) from 1."""
    from logtallyd.records import Rejected

    check = FileCheck(path)
    arrival = time.time()

    def reject(reason: str, text: str) -> None:
        check.rejected[reason] += 1
        if len(check.examples) < max_examples:
            check.examples.append((check.lines, reason, text[:200]))

    for frames, errors, _ in read_batches(path, max_message_bytes):
        # The framer reports errors separately from frames; in a file they are rare (only
        # oversize lines), so they are numbered after the frames of the same chunk.
        for raw in frames:
            check.lines += 1
            result = parse(raw.decode("utf-8", "replace"), arrival, options)
            if isinstance(result, Rejected):
                reject(result.reason, raw.decode("utf-8", "replace"))
            else:
                check.by_format[result.format] += 1
        for error in errors:
            check.lines += 1
            reject(error.reason, error.sample.decode("utf-8", "replace"))
    return check


def run_validate(argv: list[str]) -> int:
    """`logtallyd validate PATH... [--json] [--examples N]`; exit status 1 when a line is rejected."""
    ap = argparse.ArgumentParser(prog="logtallyd validate", description="Check how log lines parse.")
    ap.add_argument("paths", nargs="+", metavar="PATH", help="files, .gz files or directories")
    ap.add_argument("--json", action="store_true", help="one JSON object per file")
    ap.add_argument("--examples", type=int, default=10, metavar="N", help="rejected lines shown per file")
    args = ap.parse_args(argv)
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        print(f"logtallyd validate: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    from logtallyd.parsing import ParseOptions, parse_line

    options = ParseOptions()
    any_rejected = False
    for path in find_files(args.paths):
        check = validate_file(path, parse_line, options, args.examples)
        any_rejected = any_rejected or bool(check.rejected)
        if args.json:
            print(json.dumps(check.as_dict()))
            continue
        parsed = sum(check.by_format.values())
        print(f"{path}: {check.lines:,} lines, {parsed:,} parsed, {sum(check.rejected.values()):,} rejected")
        for fmt, n in check.by_format.most_common():
            print(f"  {fmt:<10} {n:>10,}")
        for reason, n in check.rejected.most_common():
            print(f"  rejected {reason:<16} {n:>10,}")
        for number, reason, text in check.examples:
            print(f"  line {number}: {reason}: {text}")
    return 1 if any_rejected else 0
