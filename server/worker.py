"""The worker-process side of ingestion: one batch of frames in, one small mergeable result out.

Runs in the `ProcessPoolExecutor`. Nothing per line crosses back to the main process except the
few lines that were rejected (for the rejects file) and records asked for by `tail` subscribers.
"""
from __future__ import annotations

import msgspec

from server.aggregate import Partial
from server.parsing import ParseOptions, parse_line
from server.records import ERROR_SEVERITY, Record, Rejected
from server.templates import template_of


class WorkerOptions(msgspec.Struct, frozen=True):
    parse: ParseOptions = ParseOptions()
    max_rejects: int = 10_000  # rejected lines returned per batch for the rejects file


class BatchResult(msgspec.Struct):
    partial: bytes  # Partial.to_bytes()
    # (index in the batch, reason) for every rejected frame; the main process still holds the
    # frames, so only indices cross the pipe.
    rejected: list[tuple[int, str]]


_result_encoder = msgspec.msgpack.Encoder()
_result_decoder = msgspec.msgpack.Decoder(BatchResult)


def process_batch(frames: list[bytes], arrival: float, options: WorkerOptions) -> bytes:
    """Parse and summarise one batch; returns an encoded `BatchResult`."""
    return _result_encoder.encode(summarise(frames, arrival, options))


def decode_result(data: bytes) -> BatchResult:
    return _result_decoder.decode(data)


def summarise(frames: list[bytes], arrival: float, options: WorkerOptions) -> BatchResult:
    partial, rejected = summarise_partial(frames, arrival, options)
    return BatchResult(partial=partial.to_bytes(), rejected=rejected)


def summarise_partial(
    frames: list[bytes], arrival: float, options: WorkerOptions
) -> tuple[Partial, list[tuple[int, str]]]:
    partial = Partial()
    rejected: list[tuple[int, str]] = []
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
    return partial, rejected


def warm_up() -> int:
    """Import everything a worker needs before the first batch arrives (pool start-up)."""
    return 0
