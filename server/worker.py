"""The worker-process side of ingestion: one batch of frames in, one small mergeable result out.

Runs in the `ProcessPoolExecutor`. Nothing per line crosses back to the main process except the
few lines that were rejected (for the rejects file) and records asked for by `tail` subscribers.
"""
from __future__ import annotations

import msgspec

import functools
from typing import Any

from server.aggregate import Partial
from server.detect.config import DetectConfig
from server.detect.feed import Feed
from server.parsing import ParseOptions, parse_line
from server.parsing.cli import record_view
from server.records import ERROR_SEVERITY, Record, Rejected
from server.tailfilter import Predicate, compile_filter
from server.templates import template_of


class WorkerOptions(msgspec.Struct, frozen=True):
    parse: ParseOptions = ParseOptions()
    detect: DetectConfig = DetectConfig()
    # The filters of the current `tail` subscribers; records matching any of them come back.
    tail_filters: tuple[tuple[str, ...], ...] = ()
    max_tail: int = 1000  # tail records returned per batch at most (the rest are counted)


class BatchResult(msgspec.Struct):
    partial: bytes  # Partial.to_bytes()
    feed: bytes  # detect Feed.to_bytes()
    # (index in the batch, reason) for every rejected frame; the main process still holds the
    # frames, so only indices cross the pipe.
    rejected: list[tuple[int, str]]
    tail: list[dict[str, Any]] = []  # records for `tail` subscribers, as `logtided parse` shows them
    tail_skipped: int = 0  # matching records beyond `max_tail`


_result_encoder = msgspec.msgpack.Encoder()
_result_decoder = msgspec.msgpack.Decoder(BatchResult)


def process_batch(frames: list[bytes], arrival: float, options: WorkerOptions, seq: int = 0) -> bytes:
    """Parse and summarise one batch (number `seq` of the stream); returns an encoded `BatchResult`."""
    return _result_encoder.encode(summarise(frames, arrival, options, seq))


def decode_result(data: bytes) -> BatchResult:
    return _result_decoder.decode(data)


def summarise(frames: list[bytes], arrival: float, options: WorkerOptions, seq: int = 0) -> BatchResult:
    tail: list[dict[str, Any]] = []
    keep = _tail_predicate(options.tail_filters) if options.tail_filters else None
    feed = Feed(options.detect, origin=seq)
    partial, rejected, skipped = summarise_partial(frames, arrival, options, feed, keep, tail)
    return BatchResult(
        partial=partial.to_bytes(), feed=feed.to_bytes(), rejected=rejected, tail=tail, tail_skipped=skipped
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
) -> tuple[Partial, list[tuple[int, str]], int]:
    partial = Partial()
    rejected: list[tuple[int, str]] = []
    skipped = 0
    max_tail = options.max_tail
    parse_options = options.parse
    fallback_second = int(arrival)
    for index, raw in enumerate(frames):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Kept with U+FFFD replacement characters and counted, not rejected: an operator
            # would rather see a line with one bad byte than lose it (README: invalid UTF-8).
            text = raw.decode("utf-8", "replace")
            partial.note("invalid_utf8")
        result = parse_line(text, arrival, parse_options)
        if type(result) is Rejected:
            partial.reject(result.reason, len(raw))
            rejected.append((index, result.reason))
            continue
        record: Record = result  # type: ignore[assignment]
        ts = record.ts
        second = int(ts) if ts is not None else fallback_second
        severity = record.severity
        template = (
            template_of(record.message) if severity is not None and severity <= ERROR_SEVERITY else None
        )
        partial.add(record, len(raw), second, template)
        if feed is not None:
            feed.add(record, second, template)
        if keep is not None and tail is not None:
            view = record_view(record)
            if keep(view):
                if len(tail) < max_tail:
                    tail.append(view)
                else:
                    skipped += 1
    return partial, rejected, skipped


def warm_up() -> int:
    """Import everything a worker needs before the first batch arrives (pool start-up)."""
    return 0
