"""Line parsers: one decoded frame in, one typed `Record` (or a counted `Rejected`) out."""
# Runs in the worker processes, after framing and batching. `parse_line` is pure: the same line,
# `ref_ts` and options always give the same result; `ref_ts` (arrival time, Unix seconds) is
# used only to infer the year of RFC 3164 timestamps (the year that puts the time closest to
# it).
#
# Formats (`Record.format`): rfc5424, rfc3164, json, access, app, raw; detection is in `detect`,
# each format in its own module. A line that fits no structured format is a `raw` record.
# Trailing whitespace/NULs and a leading BOM or blanks of the frame are not part of any field.
#
# Rejection reasons (stable; they are STATS keys):
#   empty            the line is empty or only whitespace / BOM
#   invalid_json     the line starts with `{` but is not a JSON object msgspec can decode
#   bad_pri          the line starts with `<digits>` but the PRI is not 0..191 without leading zeros
#   invalid_rfc5424, invalid_rfc3164, invalid_access, invalid_app
#                    only with `force`: the forced format does not fit the line
# A `<PRI>` line that breaks RFC 5424 is not rejected: it is read as RFC 3164 (RFC 3164 §4.3.3),
# keeping facility and severity, so no data is lost; it is never labelled `rfc5424`.
from __future__ import annotations

from logtallyd.records import Record, Rejected
from logtallyd.parsing.sniff import DEFAULT_PLAN, parse, plan_for
from logtallyd.parsing.options import ParseOptions

__all__ = ["ParseOptions", "parse_line"]


def parse_line(line: str, ref_ts: float, options: ParseOptions | None = None) -> Record | Rejected:
    """Parse one frame (decoded, without its trailing newline) received at `ref_ts`."""
    return parse(line, ref_ts, DEFAULT_PLAN if options is None else plan_for(options))
