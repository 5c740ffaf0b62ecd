"""Reads the numbers users type for prime jobs (`1e9`, `10**9`, `1_000_000_000`, `42`) without eval.

Sans-I/O: text in, an int or an error string out; `parse_range` applies the job limits.
"""
from __future__ import annotations

import math
import re

MAX_DIGITS = 1000  # ISPRIME accepts hundreds of digits; this bounds parsing work
_INT = re.compile(r"[0-9]+(?:_[0-9]+)*")
_POWER = re.compile(r"([0-9]+)\*\*([0-9]+)")
_SCI = re.compile(r"([0-9]+)(?:\.([0-9]+))?[eE]\+?([0-9]+)")


def parse_number(text: str) -> int | str:
    """A non-negative integer from `text`, or a string saying why it is not one."""
    t = text.strip()
    if not t:
        return "empty number"
    if t.startswith("-"):
        return f"negative number not allowed: {text!r}"
    if t.startswith("+"):
        t = t[1:]
    if len(t) > MAX_DIGITS + 10:
        return f"number too long (over {MAX_DIGITS} digits)"
    if _INT.fullmatch(t):
        return int(t.replace("_", ""))
    if m := _POWER.fullmatch(t):
        base, exp = int(m[1]), int(m[2])
        # estimate the size before computing, so 9**999999999 is refused, not evaluated
        if base > 1 and exp * math.log10(base) > MAX_DIGITS:
            return f"number too long (over {MAX_DIGITS} digits)"
        value = base ** exp
        if len(str(value)) > MAX_DIGITS:
            return f"number too long (over {MAX_DIGITS} digits)"
        return value
    if m := _SCI.fullmatch(t):
        whole, frac, exp = m[1], (m[2] or "").rstrip("0"), int(m[3])
        if exp > MAX_DIGITS:
            return f"number too long (over {MAX_DIGITS} digits)"
        if len(frac) > exp:
            return f"not an integer: {text!r}"
        return int(whole + frac) * 10 ** (exp - len(frac))
    if re.fullmatch(r"[0-9]*\.[0-9]*", t) and t != ".":
        whole, _, frac = t.partition(".")
        if frac.strip("0"):
            return f"not an integer: {text!r}"
        return int(whole or "0")
    return f"not a number: {text!r}"


def parse_range(lo_text: str, hi_text: str, limit: int,
                max_value: int | None = None) -> tuple[int, int] | str:
    """[lo, hi] from two texts, hi >= lo, hi - lo <= limit, hi <= max_value; else an error string."""
    lo = parse_number(lo_text)
    if isinstance(lo, str):
        return f"lo: {lo}"
    hi = parse_number(hi_text)
    if isinstance(hi, str):
        return f"hi: {hi}"
    if hi < lo:
        return f"hi ({hi}) is below lo ({lo})"
    if hi - lo > limit:
        return f"range too large: hi - lo = {hi - lo} exceeds the limit {limit}"
    if max_value is not None and hi > max_value:
        return f"hi too large: {hi} exceeds the limit {max_value}"
    return lo, hi
