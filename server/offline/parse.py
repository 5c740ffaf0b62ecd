"""`logtallyd parse [--format F]`: show how logtally reads each line of stdin, one JSON object per line.

The thin I/O shell around `parse_line`: it reads the clock (once per line, for the RFC 3164
year) and writes the normalised record, or `{"rejected": reason, "line": ...}`. Templates are
grouped over blocks of `--group-lines` lines (error templates among themselves, as `TOP error`
groups them), so the output of a block follows its last line.
"""
from __future__ import annotations

import argparse
import io
import time
from typing import Callable, Iterable, TextIO

import msgspec

from logtallyd.records import ERROR_SEVERITY, FORMATS, Record, iso_utc, record_view
from logtallyd.parsing import ParseOptions, parse_line

__all__ = ["GROUP_LINES", "iso_utc", "record_view", "run_parse"]

GROUP_LINES = (1, 100_000, 1_000_000)  # range and default of --group-lines: lines held per block

_encoder = msgspec.json.Encoder()


def _group_lines(text: str) -> int:
    lo, _, hi = GROUP_LINES
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not lo <= n <= hi:
        raise argparse.ArgumentTypeError(f"{n} is outside range [{lo}, {hi}]")
    return n


def run_parse(argv: list[str], stdin: TextIO, stdout: TextIO,
              template_of: Callable[[Record], str] | None = None,
              group: Callable[[Iterable[str]], dict[str, str]] | None = None) -> int:
    """Implements `logtallyd parse`; returns the exit status.

    `template_of` gives each record its masked template; `group` (if given) maps the masked
    templates of a block to their grouped templates, which are what is printed."""
    ap = argparse.ArgumentParser(prog="logtallyd parse",
                                 description="Parse log lines from stdin, print one JSON record per line.")
    ap.add_argument("--format", choices=("auto",) + FORMATS, default="auto",
                    help="force one format (default: detect per line)")
    ap.add_argument("--group-lines", type=_group_lines, default=GROUP_LINES[1], metavar="N",
                    help=f"group templates over blocks of N lines, range [{GROUP_LINES[0]}, {GROUP_LINES[2]}] "
                         f"(default {GROUP_LINES[1]}; 1 prints each line as soon as it is read)")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage message
        return int(exc.code or 0)
    options = ParseOptions(force=None if args.format == "auto" else args.format)
    # Frames reach the daemon's parsers decoded with errors="replace"; read stdin the same way
    # (and split on LF only, like the framer, so a stray CR stays inside its line).
    buffer = getattr(stdin, "buffer", None)
    lines = io.TextIOWrapper(buffer, "utf-8", errors="replace", newline="\n") if buffer else stdin
    block: list[bytes] = []  # each line's JSON, ending with its masked template if it has one
    masked: list[str | None] = []
    errors: list[bool] = []
    encode, write, size = _encoder.encode, stdout.write, args.group_lines
    for raw in lines:
        line = raw[:-1] if raw.endswith("\n") else raw
        result = parse_line(line, time.time(), options)
        if isinstance(result, Record):
            view = record_view(result, template_of)
            block.append(encode(view))
            masked.append(view.get("template"))
            errors.append((sev := result.severity) is not None and sev <= ERROR_SEVERITY)
        else:
            block.append(encode({"rejected": result.reason, "line": line}))
            masked.append(None)
            errors.append(False)
        if len(block) >= size:
            _write(block, masked, errors, group, write)
            block, masked, errors = [], [], []
    _write(block, masked, errors, group, write)
    stdout.flush()
    if buffer:
        lines.detach()  # leave the caller's stdin open
    return 0


def _write(block: list[bytes], masked: list[str | None], errors: list[bool],
           group: Callable[[Iterable[str]], dict[str, str]] | None, write: Callable[[str], object]) -> None:
    if group is not None:
        encode = _encoder.encode
        # Error templates are grouped among themselves, as `TOP error` groups them, and the
        # others apart. Per changed template: how many bytes its encoded masked value (and the
        # closing brace) take at the end of a line, and what replaces them.
        swaps = []
        for kind in (False, True):
            groups = group(t for t, e in zip(masked, errors) if t is not None and e is kind)
            swaps.append({t: (len(encode(t)) + 1, encode(g) + b"}") for t, g in groups.items() if g != t})
        if swaps[0] or swaps[1]:
            for i, template in enumerate(masked):
                if template is not None and (s := swaps[errors[i]].get(template)) is not None:
                    line = block[i]  # `template` is the view's last key
                    block[i] = line[:len(line) - s[0]] + s[1]
    # A write per thousand lines: cheaper than one per line, and no second copy of the block.
    for start in range(0, len(block), 1000):
        write(b"\n".join(block[start:start + 1000]).decode())
        write("\n")
