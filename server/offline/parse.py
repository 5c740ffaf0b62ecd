"""`logtallyd parse [--format F]`: show how logtally reads each line of stdin, one JSON object per line.

The thin I/O shell around `parse_line`: it reads the clock (once per line, for the RFC 3164
year) and writes the normalised record, or `{"rejected": reason, "line": ...}`.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from typing import Any, Callable, TextIO

import msgspec

from logtallyd.records import FORMATS, Record, iso_utc, record_view
from logtallyd.parsing import ParseOptions, parse_line

__all__ = ["iso_utc", "record_view", "run_parse"]

_encoder = msgspec.json.Encoder()


def run_parse(argv: list[str], stdin: TextIO, stdout: TextIO,
              template_of: Callable[[Record], str] | None = None) -> int:
    """Implements `logtallyd parse`; returns the exit status."""
    ap = argparse.ArgumentParser(prog="logtallyd parse",
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
