"""Timestamp arithmetic for the parsers: civil date -> Unix seconds without `strptime` or `datetime`."""
# Each parser slices the fields out of its own layout and calls these helpers. A timestamp's
# text up to the second repeats on every line of that second, so its epoch is memoised in
# bounded dicts keyed by the exact text (hour and date parts too): most lines cost one dict
# lookup. Nothing here reads a clock: RFC 3164 year inference takes the arrival time it is
# handed.
from __future__ import annotations

import re

MONTHS: dict[str, int] = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
    "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_CACHE_LIMIT = 8192  # entries per memo dict (cleared when full)
_MISSING = object()  # memo miss (None is a memoised "invalid")
FUTURE_SLACK = 7 * 86400
_MIN_REF, _MAX_REF = 0.0, 253402300799.0  # arrival clocks from 1970 to 9999-12-31


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_year_of_day(days: int) -> int:
    """The year containing day number `days` (days since the epoch)."""
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2)


def day_epoch(y: int, m: int, d: int) -> int | None:
    """Unix seconds of midnight UTC of a date, None when the date does not exist."""
    if not (1 <= m <= 12 and 1 <= d):
        return None
    if d > _DAYS_IN_MONTH[m] and not (m == 2 and d == 29 and is_leap(y)):
        return None
    return days_from_civil(y, m, d) * 86400


# "YYYY-MM-DD?HH" -> Unix seconds of that hour (None: invalid). The separator char is part of
# the key, so `T`, `t` and ` ` each get their own entry; callers check the separator.
_hour_cache: dict[str, int | None] = {}


def iso_hour_epoch(prefix: str) -> int | None:
    """Epoch of the hour named by `YYYY-MM-DD?HH` (13 chars, digits already checked)."""
    base = _hour_cache.get(prefix, -1)
    if base != -1:
        return base
    hh = int(prefix[11:13])
    day = day_epoch(int(prefix[0:4]), int(prefix[5:7]), int(prefix[8:10]))
    base = None if day is None or hh > 23 else day + hh * 3600
    if len(_hour_cache) >= _CACHE_LIMIT:
        _hour_cache.clear()
    _hour_cache[prefix] = base
    return base


_offset_cache: dict[str, int | None] = {"Z": 0, "z": 0, "": 0}


def offset_seconds(tz: str) -> int | None:
    """`Z`, `+hh:mm`, `+hhmm` or `+hh` as seconds east of UTC; None if out of range.

    Which of these spellings a format allows is its own pattern's business (RFC 5424 only
    takes `Z` and `+hh:mm`); this only converts.
    """
    off = _offset_cache.get(tz, -1)
    if off != -1:
        return off
    off = None
    sign = tz[:1]
    if sign in ("+", "-"):
        digits = tz[1:]
        if len(digits) == 5 and digits[2] == ":":
            digits = digits[:2] + digits[3:]
        if len(digits) == 2:
            digits += "00"
        if len(digits) == 4 and digits.isdecimal():
            hh, mm = int(digits[:2]), int(digits[2:])
            # RFC 3339 §5.6 time-numoffset: hour 00-23, minute 00-59.
            if hh <= 23 and mm <= 59:
                off = (hh * 3600 + mm * 60) * (1 if sign == "+" else -1)
    if len(_offset_cache) < 1024:
        _offset_cache[tz] = off
    return off


def bsd_epoch(month: int, day: int, secs_of_day: int, ref_ts: float) -> float | None:
    """RFC 3164 timestamps carry no year: take the latest year that is not in the future.

    "Not in the future" allows `FUTURE_SLACK` (a week) for clock skew and for senders whose
    local time is ahead of UTC, so a `Dec 31 23:59:59` line received on Jan 1 is last year's and
    a `Jan 1 00:00:01` line received (by a lagging clock) on Dec 31 is next year's. Near the turn
    of the year this is the year closest to `ref_ts`; for older lines (a file replayed in
    November that starts in February) it keeps them in the past instead of jumping ahead.
    The time is read as UTC: the format has no zone.
    """
    if not (_MIN_REF <= ref_ts <= _MAX_REF):  # also False for NaN
        return None
    year = _year_of_ref(ref_ts)
    key = (year, month, day)
    bases = _bsd_bases.get(key)
    if bases is None:
        # Midnights of this date from next year back to four years ago (Feb 29 needs a leap year).
        bases = tuple(b for y in range(year + 1, year - 4, -1)
                      if (b := day_epoch(y, month, day)) is not None)
        if len(_bsd_bases) >= _CACHE_LIMIT:
            _bsd_bases.clear()
        _bsd_bases[key] = bases
    limit = ref_ts + FUTURE_SLACK
    for base in bases:
        if base + secs_of_day <= limit:
            return float(base + secs_of_day)
    return None


_bsd_bases: dict[tuple[int, int, int], tuple[int, ...]] = {}
_year_cache: dict[int, int] = {}


def _year_of_ref(ref_ts: float) -> int:
    days = int(ref_ts // 86400)
    year = _year_cache.get(days)
    if year is None:
        if len(_year_cache) >= _CACHE_LIMIT:
            _year_cache.clear()
        year = _year_cache[days] = civil_year_of_day(days)
    return year


_day_cache: dict[tuple[int, int, int], int | None] = {}


def day_epoch_cached(y: int, m: int, d: int) -> int | None:
    key = (y, m, d)
    base = _day_cache.get(key, -1)
    if base == -1:
        if len(_day_cache) >= _CACHE_LIMIT:
            _day_cache.clear()
        base = _day_cache[key] = day_epoch(y, m, d)
    return base


# CLF `26/Dec/2016:16` (day/month/year:hour) -> epoch of that hour, None when invalid.
_clf_cache: dict[str, int | None] = {}
_clf_full: dict[str, float | None] = {}  # the whole 26-char text -> result (lines of a second)


def clf_epoch(s: str) -> float | None:
    """Apache/nginx `%t` body `dd/Mon/yyyy:hh:mm:ss +zzzz` -> Unix seconds."""
    ts = _clf_full.get(s, _MISSING)
    if ts is not _MISSING:
        return ts  # type: ignore[return-value]
    ts = _clf_epoch(s)
    if len(s) == 26:  # bounded keys
        if len(_clf_full) >= _CACHE_LIMIT:
            _clf_full.clear()
        _clf_full[s] = ts
    return ts


def _clf_epoch(s: str) -> float | None:
    if len(s) != 26 or s[2] != "/" or s[6] != "/" or s[11] != ":" or s[20] != " ":
        return None
    key = s[:14]
    base = _clf_cache.get(key, -1)
    if base == -1:
        base = None
        month = MONTHS.get(s[3:6])
        d, y, h = s[0:2], s[7:11], s[12:14]
        if month and d.isdecimal() and y.isdecimal() and h.isdecimal():
            day = day_epoch(int(y), month, int(d))
            if day is not None and int(h) <= 23:
                base = day + int(h) * 3600
        if len(_clf_cache) >= _CACHE_LIMIT:
            _clf_cache.clear()
        _clf_cache[key] = base
    if base is None:
        return None
    mi, se = s[15:17], s[18:20]
    if s[14] != ":" or s[17] != ":" or not (mi.isdecimal() and se.isdecimal()):
        return None
    off = offset_seconds(s[21:26])
    if off is None:
        return None
    return float(base + int(mi) * 60 + int(se) - off)


# ISO 8601 as applications write it: `T`, `t` or space; `.` or `,` fraction of any length;
# `Z`, `+hh:mm`, `+hhmm`, `+hh` or no zone (read as UTC), optionally after one space.
# Groups: `YYYY-MM-DD?HH:MM:SS` (the stamp), fraction digits, zone.
ISO_LENIENT = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2})(?:[.,]([0-9]{1,9})[0-9]*)?"
    r"(?: ?(Z|z|[+-][0-9]{2}(?::?[0-9]{2})?)(?![0-9A-Za-z]))?"
)

# "YYYY-MM-DD?HH:MM:SS" -> Unix seconds read as UTC (None: no such time). Every line of one
# second shares the entry: one dict lookup instead of slicing and three int() calls.
_second_cache: dict[str, int | None] = {}


def iso_second_epoch(stamp: str) -> int | None:
    """Epoch of `YYYY-MM-DD?HH:MM:SS` (19 chars, digits already checked); second 60 allowed."""
    whole = _second_cache.get(stamp, _MISSING)
    if whole is not _MISSING:
        return whole  # type: ignore[return-value]
    base = iso_hour_epoch(stamp[:13])
    m, s = int(stamp[14:16]), int(stamp[17:19])
    # RFC 3339 §5.6: second 60 is a leap second
    whole = None if base is None or m > 59 or s > 60 else base + m * 60 + s
    if len(_second_cache) >= _CACHE_LIMIT:
        _second_cache.clear()
    _second_cache[stamp] = whole
    return whole


def iso_epoch(stamp: str, frac: str | None, tz: str | None) -> float | None:
    """Unix seconds from the pieces of an ISO timestamp (see `ISO_LENIENT`'s groups)."""
    whole = iso_second_epoch(stamp)
    if whole is None:
        return None
    off = offset_seconds(tz) if tz else 0  # the caller's pattern fixed the syntax
    if off is None:
        return None
    return whole - off + (int(frac) / 10 ** len(frac) if frac else 0.0)


_iso_cache: dict[str, float | None] = {}


def parse_iso(text: str) -> float | None:
    """A whole string that is an ISO 8601 timestamp (JSON `timestamp` fields) -> Unix seconds."""
    # Whole-second stamps repeat on every line of that second: memoised by the exact text.
    ts = _iso_cache.get(text, _MISSING)
    if ts is not _MISSING:
        return ts  # type: ignore[return-value]
    m = ISO_LENIENT.match(text)
    ts = None if m is None or m.end() != len(text) else iso_epoch(*m.groups())
    if len(text) <= 40:  # a timestamp's length: junk values must not fill memory
        if len(_iso_cache) >= _CACHE_LIMIT:
            _iso_cache.clear()
        _iso_cache[text] = ts
    return ts
