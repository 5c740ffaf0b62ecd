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
from logtallyd.ingest.framing import Delimiter, FrameError, Framer
from logtallyd.ingest.pressure import InFlight
from logtallyd.ingest.reorder import Reorder
from logtallyd.pool.worker import late_options, start_worker
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
    path: Path, max_message_bytes: int = MAX_MESSAGE_BYTES, chunk_bytes: int = CHUNK_BYTES,
    delimiter: Delimiter = "learn",
) -> Iterator[tuple[list[bytes], list[FrameError], int]]:
    """(frames, framing errors, raw bytes read so far) per chunk of one file, streamed."""
    raw, reader = _open(path)
    framer = Framer(max_message_bytes, delimiter=delimiter)  # a file is framed as a TCP stream
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

    return process_batch, WorkerOptions(sketch=True, undated="neighbour")  # this main process is the bottleneck


def _decode(result: bytes) -> Any:
    from logtallyd.pool.worker import decode_result

    return decode_result(result)


class Progress:
    """A rich progress bar on stderr (bytes, lines/s, ETA), drawn only when stderr is a terminal."""

    def __init__(self, total_bytes: int, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress as Bar, TaskProgressColumn, TextColumn,
                                   TimeRemainingColumn)

        self._bar = Bar(
            TextColumn("[bold]analyze"), BarColumn(), TaskProgressColumn(), DownloadColumn(binary_units=True),
            TextColumn("{task.fields[rate]} lines/s"), TextColumn("eta"), TimeRemainingColumn(),
            console=Console(file=sys.stderr), transient=False,
        )
        self._task = self._bar.add_task("analyze", total=max(total_bytes, 1), rate="-")
        self._started = time.monotonic()
        self._bar.start()

    def update(self, done_bytes: int, lines: int, force: bool = False) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._started
        rate = f"{lines / elapsed:,.0f}" if elapsed > 0 else "-"
        self._bar.update(self._task, completed=done_bytes, rate=rate, refresh=force)

    def done(self) -> None:
        if self.enabled:
            self._bar.refresh()
            self._bar.stop()


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
    delimiter: Delimiter = "learn",
    chunk_bytes: int = CHUNK_BYTES,
    batch_lines: int = BATCH_LINES,
    clock: Callable[[], float] = time.time,
    progress: bool = False,
    on_merge: Callable[[Partial, float], None] | None = None,
    on_result: Callable[[int, Any], None] | None = None,
    into: Stats | None = None,
    executor: cf.Executor | None = None,
    in_flight: int | None = None,
) -> Stats:
    """Map every batch of every file to a `Partial` in `workers` processes (0: in this process),
    reduce them into one `Stats`. `on_merge(partial, now)` sees every partial after it is merged;
    `on_result(batch number, BatchResult)` sees each worker result (detectors, as the server's
    `Pipeline.on_result`); `into` is the `Stats` to merge into (a new one by default). `executor`
    runs the batches instead of a local pool (`analyze --nats`), with `in_flight` batches unmerged
    at a time."""
    if batch_fn is None:
        batch_fn, default_options = default_batch_fn()
        options = default_options if options is None else options
    files = find_files(paths)
    stats = into if into is not None else Stats(stats_config or StatsConfig(), clock())
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
    flight: InFlight[Batch] = InFlight(in_flight or 2 * workers or 1)  # 2 per worker keeps every worker busy
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

    pool: cf.Executor
    if executor is not None:
        pool = executor
    else:
        pool = cf.ProcessPoolExecutor(max_workers=workers, initializer=start_worker) if workers else _InProcess()
    with pool:
        for path in files:
            size = 0
            for frames, errors, size in read_batches(path, max_message_bytes, chunk_bytes, delimiter):
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


# -- commands --------------------------------------------------------------------------------


def run_analyze(argv: list[str]) -> int:
    """`logtallyd analyze PATH... [--json] [--html FILE] [--events] [--workers N] [--top N]`."""
    ap = argparse.ArgumentParser(prog="logtallyd analyze", description="Statistics of log files.")
    ap.add_argument("paths", nargs="+", metavar="PATH", help="files, .gz files or directories")
    ap.add_argument("--json", action="store_true",
                    help="print the STATS `all` object as JSON, with `top`, `web` (access logs) and `events`")
    ap.add_argument("--html", metavar="FILE",
                    help="also write the report as one self-contained HTML page (no network needed to view it)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="worker processes (0: parse in this process)")
    ap.add_argument("--top", type=int, default=10, metavar="N", help="entries per top-N table")
    ap.add_argument("--config", metavar="FILE",
                    help="config.toml: [stats], [parse], [detect] and the max message size")
    ap.add_argument("--events", action="store_true",
                    help="also run the anomaly detectors and list their events (as the server would)")
    ap.add_argument("--no-web", action="store_true",
                    help="skip the web panels (visitors, URLs, browsers...) of access logs")
    ap.add_argument("--nats", metavar="URL",
                    help="parse on the cluster's nodes (daemons with [cluster] nats) through a JetStream work queue")
    ap.add_argument("--nats-timeout", type=float, default=30.0, metavar="S",
                    help="with --nats: give up when no batch comes back for this many seconds")
    ap.add_argument("--in-flight", type=int, default=0, metavar="N",
                    help="with --nats: batches sent and not yet merged (default: 4 x --workers)")
    args = ap.parse_args(argv)
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        print(f"logtallyd analyze: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.workers < 0:
        print("logtallyd analyze: --workers must be >= 0", file=sys.stderr)
        return 2
    from logtallyd.daemon.config import ConfigError, load_config
    from logtallyd.offline.report import AnalyzeResult, format_html, format_text
    from logtallyd.offline.trends import Trends
    from logtallyd.pool.worker import WorkerOptions, quiet_gc
    from logtallyd.stats.webreport import WebConfig, WebPartial, summarise

    try:
        config = load_config(args.config)  # None: the built-in defaults, as the daemon's
    except ConfigError as exc:
        print(f"logtallyd analyze: {exc}", file=sys.stderr)
        return 2
    web_config = None if args.no_web else WebConfig()
    settings: dict[str, Any] = {
        "stats_config": config.stats,
        # Without --html nothing reads the windows, only "all": one bucket per day and batch
        # then does, where per-second buckets cost most of the time on a file of ~10 lines/s.
        "options": WorkerOptions(parse=config.parse, detect=config.detect, web=web_config,
                                 distinct_lg_k=config.stats.distinct_lg_k, feed=args.events, sketch=True,
                                 grain=1 if args.html else 86400, undated="neighbour",
                                 **late_options(config.stats)),
        "max_message_bytes": config.ingest.max_message_bytes,
        "delimiter": config.ingest.delimiter,
        "batch_lines": config.pipeline.batch_lines,
    }
    events: list[Any] = []
    driver = None
    if args.events:
        from logtallyd.detect.engine import Engine
        from logtallyd.detect.feed import Feed
        from logtallyd.detect.driver import Driver

        driver = Driver(Engine(config.detect), config.pipeline.event_lateness_s, config.stats.max_future_s)
    web = WebPartial(web_config) if web_config is not None else None

    def on_result(seq: int, result: Any) -> None:
        # Results come in batch order: the web panels' bounded tables and the detectors both
        # depend on it, so a file gives the same report with any number of workers.
        if driver is not None:
            events.extend(driver.add(Feed.from_bytes(result.feed), 0.0))
        if web is not None and result.web:
            web.merge_bytes(result.web)

    settings["on_result"] = on_result
    stats = Stats(config.stats, time.time(), windows=bool(args.html))
    trends = Trends() if args.html else None
    if trends is not None:  # the hours and days of the HTML report, taken as the windows move
        settings["on_merge"] = lambda partial, now: trends.update(stats, now)
        stats.on_retire = trends.retire
    if args.nats:
        import structlog

        from logtallyd.offline.fleet import FleetExecutor, NoNodeAnswered

        # The NATS client's connection logs go to stderr: stdout holds only the report.
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
        cluster = msgspec.structs.replace(config.cluster, nats=args.nats)
        try:
            fleet = FleetExecutor(cluster, args.nats_timeout)
        except Exception as exc:
            print(f"logtallyd analyze: cannot reach NATS at {args.nats}: {exc!r}", file=sys.stderr)
            return 2
        settings["executor"] = fleet
        settings["in_flight"] = args.in_flight or 4 * max(args.workers, 1)
    if web_config is not None and args.workers and not args.nats:
        # What each worker would load for its first web batch (the sketch library with numpy,
        # ua-parser's rules), loaded once here before the pool forks them: this process merges
        # with the sketches anyway, and the workers start with them.
        from logtallyd.stats import webreport
        from logtallyd.stats.sketches import ds

        ds.hll_union  # noqa: B018 (the lazy module is executed on its first attribute)
        webreport.preload_ua_parser()
    try:
        # The merges allocate ~170k rows and buckets a file, none in a cycle: young collections
        # walking the process's modules each time cost ~12% of this process's CPU.
        with quiet_gc():
            analyze_paths(args.paths, workers=args.workers, progress=sys.stderr.isatty(), into=stats, **settings)
    except Exception as exc:
        if args.nats and isinstance(exc, NoNodeAnswered):
            print(f"logtallyd analyze: {exc}", file=sys.stderr)
            return 3
        raise
    if args.nats:
        print(f"logtallyd analyze: batches parsed by {', '.join(sorted(fleet.nodes)) or 'no node'}", file=sys.stderr)
    if driver is not None:
        events.extend(driver.finish())
    now = time.time()
    if trends is not None:
        trends.update(stats, now, final=True)
    report = stats.report("all", now)
    fields = ("ip", "user_agent", "path", "service", "host", "status", "error", "suspicious_ip")
    tops = {field: stats.top(field, args.top, "all", now) for field in fields}
    summary = summarise(web, args.top) if web is not None else None
    event_values = [msgspec.to_builtins(e) for e in events] if args.events else None
    result = AnalyzeResult(report, tops, summary, event_values, stats.horizon, config.stats.max_future_s,
                           args.paths, trends.answer() if trends is not None else None)
    if args.html:
        try:
            Path(args.html).write_text(format_html(result), encoding="utf-8")
        except OSError as exc:
            print(f"logtallyd analyze: cannot write {args.html}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        extra: dict[str, Any] = {"events": event_values} if args.events else {}
        if summary is not None:
            extra["web"] = summary
        print(json.dumps({**report, "top": tops, **extra}))
    else:
        print(format_text(result))
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
