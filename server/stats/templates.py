"""Message templates, stage one: the variable parts of a log message masked, so like messages group.

`template_of` is a pure function of the message (general rules only: the token-with-digit rule,
addresses, dates, ids), so every worker gives the same masked template for the same message and
counts keyed by it merge; `grouping.py` then merges masked templates whose words vary like values.
"""
from __future__ import annotations

import functools
import re
from typing import Callable

import msgspec

from logtallyd.records import Record

WILDCARD = "<*>"

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"


class TemplateRules(msgspec.Struct, frozen=True):
    """Which general masking heuristics apply; `bench/templates.py --cv` chooses them by
    cross-validation on the Loghub-2k samples (none names a dataset's own tokens)."""

    quoted: bool = True  # a quoted string is one value
    hosts: bool = True  # dotted lower-case names ending in a TLD are host names
    paths: bool = True  # an absolute path is one value
    key_value: bool = False  # the value of `key=value` is a value, digits or not
    token: bool = False  # a whitespace token holding a digit is masked whole (Drain's preprocessing)
    collapse: bool = True  # adjacent values are one value, so a variable-length list is one slot


def _patterns(rules: TemplateRules) -> list[str]:
    out = [
        # dates written out: "Sun Jul 10 03:55:21 2005", "Jul 10 03:55:21", "10/Jul/2005:03:55:21 +0200"
        rf"\b(?:{_DAY},?\s+)?{_MONTH}\s+\d{{1,2}}(?:,?\s+\d{{4}})?\s+\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?(?:\s+\d{{4}})?\b",
        rf"\b\d{{1,2}}/{_MONTH}/\d{{4}}(?::\d{{2}}){{3}}(?:\s+[+-]\d{{4}})?",
        # ISO 8601 / RFC 3339 timestamps
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
        # UUID (RFC 9562 §4 textual form)
        r"(?<![\w\-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
        # URL (RFC 3986 §3: scheme "://" ...)
        r"(?<![\w+.\-])[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>]+",
        # e-mail address
        r"(?<![\w.+\-])[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+\b",
        # IPv4, optional port
        r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])",
        # IPv6 (RFC 4291 §2.2 forms, RFC 5952 §6 "[addr]:port")
        r"\[(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?:%\w+)?\](?::\d{1,5})?",
        r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?:%\w+)?(?![\w:])",
        r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){0,6}[0-9a-fA-F]{0,4}::(?:[0-9a-fA-F]{1,4}:){0,6}[0-9a-fA-F]{0,4}(?:%\w+)?(?![\w:])",
        # MAC address
        r"\b[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}\b",
    ]
    if rules.hosts:  # lower-case labels ending in a generic or country TLD (not Java packages)
        out.append(r"(?<![\w.\-])(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+(?:com|net|org|edu|gov|mil|int|info|biz|io|[a-z]{2})(?![\w.\-])")
    if rules.quoted:
        out += [r"\"[^\"]*\"", r"(?<!\w)'[^']*'"]
    if rules.paths:  # a leading "/" and one or more segments
        out.append(r"(?<![\w.])(?:/[\w.\-@%+~]+)+/?")
    out += [
        # quantities with a unit: "12.5 KB", "300ms"
        r"(?<![\w.])\d+(?:\.\d+)?\s?(?:[KMGTPE]i?B|B|ms|us|ns)\b",
        # numbers, hex numbers, ids: any run of word characters that holds a digit
        r"(?<![\w.\-+])[\w.\-+]*\d[\w.\-+]*",
    ]
    return out


# Values named by a key: "user=alice", "uid=42". The key is kept.
_KEY_VALUE = re.compile(r"(?<=[\w\]\)])(=)(?!<\*>)([^\s,;&=]+)")
# An empty slot where a value usually is: "connection from 1.2.3.4 () at ..."
_EMPTY_PARENS = re.compile(r"(?<=\s)\(\)")
_SPACES = re.compile(r"\s{2,}")
# A whitespace token that holds a digit or an already masked value.
_TOKEN = re.compile(r"(?<!\S)\S*(?:\d|<\*>)\S*")
# Values next to each other, joined by blanks or separators: "<*>:<*>", "<*> <*> <*>".
_RUN = re.compile(r"<\*>(?:[\s.:,;/\-_#]*<\*>)+")


def compile_rules(rules: TemplateRules) -> Callable[[str], str]:
    """A cached `message -> template` function applying `rules`."""
    mask = re.compile(r"(?<![\w.\-+])(?:" + "|".join(f"(?:{p})" for p in _patterns(rules)) + ")")

    # Every pattern starts at a token boundary; checking that once up front keeps the scan
    # linear and cheap (the alternatives are not tried inside words).
    @functools.lru_cache(maxsize=4096)
    def template(message: str) -> str:
        # The cheap `in` tests skip passes that cannot match (most messages need only `mask`).
        t = _SPACES.sub(" ", message) if ("  " in message or "\t" in message or "\n" in message) else message
        t = mask.sub(WILDCARD, t)
        if "()" in t:
            t = _EMPTY_PARENS.sub(f"({WILDCARD})", t)
        if rules.key_value and "=" in t:
            t = _KEY_VALUE.sub(rf"\1{WILDCARD}", t)
        if rules.token and "<*>" in t:
            t = _TOKEN.sub(WILDCARD, t)
        if rules.collapse and "<*>" in t:
            t = _RUN.sub(WILDCARD, t)
        return t

    def template_of(message: str) -> str:
        # Messages that differ only in their digits ("request 17 failed", "request 18 failed")
        # share one cache entry: when every digit of the shape was masked, the template of the
        # shape is the message's template too (the unmasked text of both is the same).
        shape = message.encode("utf-8", "surrogatepass").translate(_SHAPE).decode("utf-8", "surrogatepass")
        t = template(shape)
        if "0" in t:  # a digit survived masking: the shape's template would show 0 for it
            t = template(message)
        return t

    template_of.uncached = template  # type: ignore[attr-defined]
    return template_of


# Every ASCII digit written as 0: the message's "shape". No pattern above tells one ASCII digit
# from another (they use \d, [0-9], [0-9a-fA-F], \w, \S: classes holding all ten, and no literal
# digit), so a message and its shape are masked at exactly the same spans.
# (Translated as UTF-8 bytes: bytes.translate is a table lookup per byte, several times faster
# than str.translate, and no byte of a multi-byte UTF-8 sequence is an ASCII digit.)
_SHAPE = bytes.maketrans(b"123456789", b"000000000")

RULES = TemplateRules()
template_of = compile_rules(RULES)
"""The message with numbers, ids, addresses, paths and quoted values replaced by `<*>` (stage one)."""
_template = template_of.uncached  # type: ignore[attr-defined]


def record_template(record: Record) -> str:
    """What a record counts under in `TOP error` (and `logtallyd parse` shows as `template`).

    An HTTP request (an access line, bare or inside syslog) is its request, not its whole line:
    `GET /api/users/<*> 503`, so failing endpoints are told apart. Anything else is the masked
    message.
    """
    http = record.http
    if http is not None and http.status is not None and "access" in (record.format, record.inner_format):
        return f"{http.method or '-'} {path_template(http.path) if http.path else '-'} {http.status}"
    return template_of(record.message)


def path_template(path: str) -> str:
    """`/api/v1/users/42?page=3` -> `/api/v1/users/<*>?<*>`: segments holding a digit are masked."""
    path, sep, _query = path.partition("?")
    segments = [
        "<*>" if any(c.isdigit() for c in part) and not _VERSION.fullmatch(part) else part
        for part in path.split("/")
    ]
    return "/".join(segments) + ("?<*>" if sep else "")


_VERSION = re.compile(r"v\d{1,2}")  # API versions stay: /v1/ and /v2/ are different endpoints
