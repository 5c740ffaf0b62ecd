"""`logtided parse [--format F]`: show how logtide reads each line of stdin, one JSON object per line.

The thin I/O shell around `parse_line`: it reads the clock (once per line, for the RFC 3164
year) and writes the normalised record, or `{"rejected": reason, "line": ...}`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import time
from typing import Any, Callable, TextIO

import msgspec

from server.records import FORMATS, Record
from server.parsing import ParseOptions, parse_line

_encoder = msgspec.json.Encoder()
_FIELDS = ("format", "ts", "host", "service", "level", "severity", "facility", "procid", "msgid",
           "structured_data", "message")


def iso_utc(ts: float | None) -> str | None:
    """Unix seconds -> `2025-01-30T12:00:00.123Z` (fraction only as long as needed, up to us)."""
    if ts is None:
        return None
    micros = round(ts * 1_000_000)
    seconds, frac = divmod(micros, 1_000_000)
    try:
        base = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None
    if frac == 0:
        return base + "Z"
    if frac % 1000 == 0:
        return f"{base}.{frac // 1000:03d}Z"
    return f"{base}.{frac:06d}Z"


def record_view(rec: Record, template_of: Callable[[Record], str] | None = None) -> dict[str, Any]:
    """The JSON shape `logtided parse` prints for one record."""
    view: dict[str, Any] = {name: getattr(rec, name) for name in _FIELDS}
    view["ts"] = iso_utc(rec.ts)
    if rec.http is not None:
        view["http"] = msgspec.structs.asdict(rec.http)
    if rec.inner_format is not None:
        view["inner_format"] = rec.inner_format
    if template_of is not None:  # the template grouping of `TOP error` (issue 4)
        view["template"] = template_of(rec)
    return view


def run_parse(argv: list[str], stdin: TextIO, stdout: TextIO,
              template_of: Callable[[Record], str] | None = None) -> int:
    """Implements `logtided parse`; returns the exit status."""
    ap = argparse.ArgumentParser(prog="logtided parse",
                                 description="Parse log lines from stdin, print one JSON record per line.")
    ap.add_argument("--format", choices=("auto",) + FORMATS, default="auto",
                    help="force one format (default: detect per line)")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage message
        return int(exc.code or 0)
    options = ParseOptions(force=None if args.format == "auto" else args.format)
    # Frames reach the daemon's parsers decoded with errors="replace"; read stdin the same way
    # (and split on LF only, like the framer, so a stray CR stays inside its line).
    buffer = getattr(stdin, "buffer", None)
    lines = io.TextIOWrapper(buffer, "utf-8", errors="replace", newline="\n") if buffer else stdin
    for raw in lines:
        line = raw[:-1] if raw.endswith("\n") else raw
        result = parse_line(line, time.time(), options)
        if isinstance(result, Record):
            out: dict[str, Any] = record_view(result, template_of)
        else:
            out = {"rejected": result.reason, "line": line}
        stdout.write(_encoder.encode(out).decode())
        stdout.write("\n")
    stdout.flush()
    if buffer:
        lines.detach()  # leave the caller's stdin open
    return 0


if __name__ == "__main__":
    sys.exit(run_parse(sys.argv[1:], sys.stdin, sys.stdout))
