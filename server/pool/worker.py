"""The worker-process side of ingestion: one batch of frames in, one small mergeable result out.

Runs in the `ProcessPoolExecutor`. Nothing per line crosses back to the main process except the
few lines that were rejected (for the rejects file) and records asked for by `tail` subscribers.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import select
import signal
import threading
import time
import multiprocessing
import operator
from typing import Any, Callable, Iterator, Literal

import msgspec

from logtallyd.stats.aggregate import Partial, behind_lines, by_second, error_templates, neighbour_seconds
from logtallyd.detect.config import DetectConfig
from logtallyd.detect.feed import Feed
from logtallyd.parsing import ParseOptions
from logtallyd.parsing.sniff import Plan, parse, plan_for
from logtallyd.records import Record, Rejected, record_view
from logtallyd.publish.tailfilter import Predicate, compile_filter
from logtallyd.stats.config import StatsConfig
from logtallyd.stats.templates import record_template
from logtallyd.stats.webreport import WebConfig, collect


class WorkerOptions(msgspec.Struct, frozen=True):
    parse: ParseOptions = ParseOptions()
    # `[listeners.NAME.parse]`: options for the frames of one listener (tcp, udp, tls) instead.
    listener_parse: dict[str, ParseOptions] = {}
    detect: DetectConfig = DetectConfig()
    # The filters of the current `tail` subscribers; records matching any of them come back.
    tail_filters: tuple[tuple[str, ...], ...] = ()
    max_tail: int = 1000  # tail records returned per batch at most (the rest are counted)
    # `analyze`'s web report (GoAccess's panels); None, as in the daemon, collects nothing.
    web: WebConfig | None = None
    distinct_lg_k: int = 12  # `[stats] distinct_lg_k`: the HLL sketches are built at the size merged into
    sender_hostnames: int = 8  # `[ingest] sender_hostnames`: host fields returned per sender at most
    # The detectors' per-second feed; `analyze` without `--events` reads none, so builds none.
    feed: bool = True
    # Build the batch's sketches here rather than in the main process (`Bucket.settle`): right
    # for `analyze`, whose main process is its bottleneck; a daemon's worker then stays without
    # the sketch library.
    sketch: bool = False
    # Seconds one bucket of the result spans (`Partial.grain`): 1 for windows; 86400 for a
    # `Stats` without them (`analyze` without `--html`), which needs one bucket per day.
    grain: Literal[1, 86400] = 1
    # `[stats]`: a line this many seconds (the largest window) older than the newest line before
    # it is `late` (Partial.behind); None with `anchor = "wall"`, where the clock decides alone.
    # Lines past the future guard (`max_future_s` after the batch's arrival) set no newest line.
    behind_s: int | None = 900
    max_future_s: int = 300
    # The second a line without a timestamp is filed at: its arrival (live), or, for a file
    # (`analyze`), that of the stamped line before it (`linecount.neighbour_seconds`).
    undated: Literal["arrival", "neighbour"] = "arrival"


def late_options(stats: StatsConfig) -> dict[str, Any]:
    """The `WorkerOptions` that judge late lines as the `Stats` of `[stats]` will."""
    return {"behind_s": None if stats.anchor == "wall" else max(stats.windows.values()),
            "max_future_s": stats.max_future_s}


class BatchResult(msgspec.Struct):
    partial: bytes  # Partial.to_bytes()
    feed: bytes  # detect Feed.to_bytes(); b"" when `WorkerOptions.feed` is off
    # (index in the batch, reason) for every rejected frame; the main process still holds the
    # frames, so only indices cross the pipe.
    rejected: list[tuple[int, str]]
    tail: list[dict[str, Any]] = []  # records for `tail` subscribers, as `logtallyd parse` shows them
    tail_skipped: int = 0  # matching records beyond `max_tail`
    web: bytes = b""  # WebPartial.to_bytes() when `WorkerOptions.web` asks for one
    # sender address -> the distinct host fields its records carried (at most `sender_hostnames` + 1)
    claims: dict[str, list[str]] = {}


_result_encoder = msgspec.msgpack.Encoder()
_result_decoder = msgspec.msgpack.Decoder(BatchResult)


def process_batch(
    frames: list[bytes],
    arrival: float,
    options: WorkerOptions,
    seq: int = 0,
    listeners: list[tuple[str, int]] | None = None,
    senders: list[tuple[str, int]] | None = None,
) -> bytes:
    """Parse and summarise one batch (number `seq` of the stream); returns an encoded `BatchResult`.

    `listeners` says, run by run, which listener each frame came from (for `listener_parse`);
    `senders`, which sender address ("" = none, as in `analyze`), for the sender detectors and SENDERS.
    """
    if not _gc_tuned:
        tune_gc()
    return _result_encoder.encode(summarise(frames, arrival, options, seq, listeners, senders))


_gc_tuned = False


def tune_gc() -> None:
    """Make the cyclic GC cheap in a pool worker (a no-op in any other process).

    A batch allocates thousands of records, none of them in a reference cycle, and every young
    collection it triggers used to walk the worker's long-lived objects as well (modules, parser
    caches): ~15% of a worker's time. Freezing what exists after start-up takes those out of
    every later collection, and a higher young-generation threshold makes collections rarer.
    Cycles are still collected.
    """
    global _gc_tuned
    _gc_tuned = True
    if multiprocessing.parent_process() is None:
        return  # the main process, `analyze` in-process or a test: its GC is not ours to tune
    quiet_process_gc()


def quiet_process_gc() -> None:
    """For good, in a process of our own (a pool worker, the daemon once it listens): what exists
    now (modules, caches, the daemon's parts) is frozen out of every later collection, and young
    collections are rarer. The daemon's main process decodes thousands of small objects a batch
    (partials, feeds); with the default thresholds its collections took ~0.4 µs a line, a fifth
    of its CPU (bench/ingest.py). Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_QUIET_THRESHOLDS)


_QUIET_THRESHOLDS = (20_000, 10, 10)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """`tune_gc` for a stretch of a main process (`analyze` merging its workers' results), undone
    after: the process may be a test session or a caller that keeps running. What exists when it
    starts is frozen out of the collections in between; cycles are still collected."""
    before = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0  # an earlier freeze is someone else's: left as it is
    if freeze:
        gc.freeze()
    gc.set_threshold(*_QUIET_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freeze:
            gc.unfreeze()


def decode_result(data: bytes) -> BatchResult:
    return _result_decoder.decode(data)


def summarise(
    frames: list[bytes],
    arrival: float,
    options: WorkerOptions,
    seq: int = 0,
    listeners: list[tuple[str, int]] | None = None,
    senders: list[tuple[str, int]] | None = None,
) -> BatchResult:
    tail: list[dict[str, Any]] = []
    keep = _tail_predicate(options.tail_filters) if options.tail_filters else None
    feed = Feed(options.detect, origin=seq) if options.feed else None
    web: list[bytes] = []
    claims: dict[str, list[str]] = {}
    partial, rejected, skipped = summarise_partial(frames, arrival, options, feed, keep, tail, listeners, web,
                                                   senders, claims)
    return BatchResult(
        partial=partial.to_bytes(), feed=b"" if feed is None else feed.to_bytes(), rejected=rejected, tail=tail,
        tail_skipped=skipped, web=web[0] if web else b"", claims=claims,
    )


@functools.lru_cache(maxsize=64)
def _tail_predicate(filters: tuple[tuple[str, ...], ...]) -> Predicate:
    compiled = [p for p in (compile_filter(list(terms)) for terms in filters) if not isinstance(p, str)]
    return lambda view: any(p(view) for p in compiled)


def summarise_partial(
    frames: list[bytes],
    arrival: float,
    options: WorkerOptions,
    feed: Feed | None = None,
    keep: Predicate | None = None,
    tail: list[dict[str, Any]] | None = None,
    listeners: list[tuple[str, int]] | None = None,
    web: list[bytes] | None = None,
    senders: list[tuple[str, int]] | None = None,
    claims: dict[str, list[str]] | None = None,
) -> tuple[Partial, list[tuple[int, str]], int]:
    partial = Partial(lg_k=options.distinct_lg_k, grain=options.grain)
    rejected: list[tuple[int, str]] = []
    texts = _decode_all(frames, partial)
    # The per-line loop only decodes and parses; everything counted is then pulled out of the
    # batch's records column by column (Partial.add_many, Feed.add_many).
    try:
        results = _parse_all(texts, arrival, options, listeners, parse)
    except Exception:
        # A parser bug on some line must cost that line, not its batch: again, line by line.
        results = _parse_all(texts, arrival, options, listeners, _guarded_parse)
    sizes = list(map(len, frames))
    records: list[Record] = results  # type: ignore[assignment]
    # Each record's sender address, one column built from the runs (None: no sender known).
    by_sender: list[str] | None = None
    if senders and any(name for name, _ in senders):
        by_sender = []
        for name, count in senders:
            by_sender += [name] * count
    if Rejected in set(map(type, results)):
        records, kept, kept_senders = [], [], []
        for index, result in enumerate(results):
            if type(result) is Rejected:
                partial.reject(result.reason, sizes[index])
                rejected.append((index, result.reason))
            else:
                records.append(result)  # type: ignore[arg-type]
                kept.append(sizes[index])
                if by_sender is not None:
                    kept_senders.append(by_sender[index])
        sizes = kept
        if by_sender is not None:
            by_sender = kept_senders
    if by_sender is not None and claims is not None:
        _claims(by_sender, records, options.sender_hostnames, claims)
    stamps = list(map(_TS, records))
    if None in stamps:
        neighbours = neighbour_seconds(stamps) if options.undated == "neighbour" else None
        if neighbours is not None:
            seconds = neighbours
        else:
            fallback_second = int(arrival)
            seconds = [fallback_second if ts is None else int(ts) for ts in stamps]
    else:
        seconds = list(map(int, stamps))
    templates = error_templates(records, record_template)
    groups = by_second(seconds)
    behind = [] if options.behind_s is None else behind_lines(seconds, options.behind_s,
                                                              int(arrival) + options.max_future_s)
    partial.add_many(records, sizes, seconds, templates, groups, behind)
    if options.sketch:
        partial.fold()
        for bucket in (*partial.buckets.values(), *partial.behind.values()):
            bucket.settle()
    if feed is not None:
        feed.add_many(records, seconds, templates, groups, by_sender)
    if web is not None and options.web is not None:
        web.append(collect(records, options.web).to_bytes())
    skipped = 0
    if keep is not None and tail is not None:
        for record in records:
            view = record_view(record)
            if keep(view):
                if len(tail) < options.max_tail:
                    tail.append(view)
                else:
                    skipped += 1
    return partial, rejected, skipped


def _parse_all(texts: list[str], arrival: float, options: WorkerOptions, listeners: list[tuple[str, int]] | None,
               parse_one: Callable[[str, float, Plan], Record | Rejected]) -> list[Record | Rejected]:
    if listeners and options.listener_parse:
        results: list[Record | Rejected] = []
        start = 0
        for name, count in listeners:
            plan = plan_for(options.listener_parse.get(name, options.parse))
            results.extend(parse_one(text, arrival, plan) for text in texts[start : start + count])
            start += count
        return results
    plan = plan_for(options.parse)
    return [parse_one(text, arrival, plan) for text in texts]


INTERNAL_ERROR = Rejected("internal_error")


def _guarded_parse(text: str, arrival: float, plan: Plan) -> Record | Rejected:
    """`parse`, with an exception (a parser bug) turned into the line's rejection: counted as
    `internal_error` and written to the rejects file with the line, the rest of the batch parsed."""
    try:
        return parse(text, arrival, plan)
    except Exception:
        return INTERNAL_ERROR


def _claims(by_sender: list[str], records: list[Record], limit: int, claims: dict[str, list[str]]) -> None:
    """The distinct host fields each sender's records carry: `limit` + 1 per sender at most, so
    the sender table can tell that there were more than it keeps."""
    if by_sender.count(by_sender[0]) == len(by_sender) if by_sender else True:
        # One sender (the common batch: one peer's lines): its distinct hosts, one C-level pass.
        pairs = {(by_sender[0], host) for host in set(map(_HOST, records))} if by_sender else set()
    else:
        pairs = set(zip(by_sender, map(_HOST, records)))
    for sender, host in sorted(pairs, key=_PAIR_KEY):
        if sender and host:
            names = claims.setdefault(sender, [])
            if len(names) <= limit:
                names.append(host)


def _PAIR_KEY(pair: tuple[str, str | None]) -> tuple[str, str]:
    return (pair[0], pair[1] or "")


def _decode_all(frames: list[bytes], partial: Partial) -> list[str]:
    """The frames as text. Invalid UTF-8 is kept with U+FFFD replacement characters and counted
    (`invalid_utf8` note), not rejected: an operator would rather see a line with one bad byte
    than lose it (README: invalid UTF-8)."""
    try:
        # One decode and one split for the whole batch, when no frame holds a LF of its own.
        texts = b"\n".join(frames).decode("utf-8").split("\n")
        if len(texts) == len(frames):
            return texts
    except UnicodeDecodeError:
        pass
    texts = []
    for raw in frames:
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(raw.decode("utf-8", "replace"))
            partial.note("invalid_utf8")
    return texts


_TS = operator.attrgetter("ts")
_HOST = operator.attrgetter("host")


def start_worker(main_pid: int | None = None) -> None:
    """Pool initializer. Ctrl-C reaches the whole foreground process group, but the main process
    alone decides how to stop (drain, snapshot, exit), so a worker ignores SIGINT instead of
    dying with a `KeyboardInterrupt` traceback. With `main_pid`, the worker exits as soon as
    that process is gone, however it died."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if main_pid is not None:
        threading.Thread(target=_exit_with, args=(main_pid,), name="main-watch", daemon=True).start()


def _exit_with(pid: int) -> None:
    # A forkserver worker's parent is the forkserver, which waits for its workers to exit before
    # it exits itself, so the parent-death signal cannot help; watch the main process instead.
    # pidfd_open(2) becomes readable when the process exits (no pid reuse race); where it is
    # missing, poll.
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        while True:
            time.sleep(0.25)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
    select.select([fd], [], [])
    os._exit(1)


def warm_up() -> int:
    """Import everything a worker needs before the first batch arrives (pool start-up)."""
    if not _gc_tuned:
        tune_gc()
    # The prime kernels (numba) are not loaded here: a log worker should not hold them, and
    # the first prime segment that runs in this worker imports them (see `sieve._kernels`).
    return 0
