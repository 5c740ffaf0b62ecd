"""The per-line part of the web report: a batch's HTTP records -> each panel's counters per key.

`webreport.collect` calls `tally` and turns its counters into sketches. This file is plain typed
Python with no classes of other libraries, so that mypyc can compile it when the package is built
(`logtallyd.stats._webtally_native`, loaded by `logtallyd.native`); the same file is the pure-Python
fallback, so the two cannot drift apart.
"""
from __future__ import annotations

import functools
import time
from typing import Any, Iterable

# The panels `tally` counts, in the order `webreport.PANELS` lists them.
PANELS = ("days", "hours", "requests", "static", "not_found", "hosts", "os", "browsers", "referrers",
          "referring_sites", "status", "endpoints")
_HOURS = [f"{h:02d}" for h in range(24)]
_OTHER = ("Other", "Other")


class Scratch:
    """One panel key within a batch: plain counters and its visitors' keys, in the order first seen.

    A dict rather than a set: an HLL estimate (HIP) depends on the order of its updates, and a
    set's order follows the per-process string hash, so a report would change with the workers."""

    __slots__ = ("hits", "bytes", "visitors", "latencies")

    def __init__(self) -> None:
        self.hits = 0
        self.bytes = 0
        self.visitors: dict[str, None] = {}
        self.latencies: list[Any] = []  # floats, as records hold them


class Tally:
    """What `tally` found in one batch."""

    __slots__ = ("requests", "sent", "undated", "everyone", "rows")

    def __init__(self) -> None:
        self.requests = 0
        self.sent = 0
        self.undated = 0  # requests without a timestamp: in every panel but days and hours
        self.everyone: dict[str, None] = {}  # every visitor, in the order first seen
        self.rows: dict[str, dict[str, Scratch]] = {name: {} for name in PANELS}


@functools.lru_cache(maxsize=8192)
def browser_and_os(user_agent: str) -> tuple[str, str]:
    """(browser family, OS family) as ua-parser names them; "Other" when it does not know.

    A file holds few distinct user agents and ua-parser takes about a millisecond for each, so
    the readings are cached per exact string (bounded; the least recently used go first)."""
    import ua_parser

    result = _ua_parser()(user_agent, ua_parser.Domain.USER_AGENT | ua_parser.Domain.OS)
    browser = result.user_agent.family if result.user_agent is not None else "Other"
    os_family = result.os.family if result.os is not None else "Other"
    return browser, os_family


_PARSER: list[Any] = []


def preload_ua_parser() -> None:
    """Load ua-parser and its rules now (a process about to fork its workers)."""
    _ua_parser()


def _ua_parser() -> Any:
    """ua-parser's parser over its rules compiled as they are first tried (`load_lazy_builtins`).

    Its default global parser compiles all ~1,300 regexes first: 0.3 s in every worker before
    the first batch of a web report, where the user agents of a file try a small share of them.
    The rules and their order are the same, so are the readings (tests/test_webreport.py)."""
    if not _PARSER:
        import ua_parser  # loaded by the workers that build a web report, not by every worker
        from ua_parser.loaders import load_lazy_builtins

        _PARSER.append(ua_parser.Parser.from_matchers(load_lazy_builtins()))
    return _PARSER[0]


def referring_site(referer: str) -> str:
    """The host of a referrer URL (RFC 3986 §3.2: authority without userinfo and port)."""
    rest = referer.partition("://")[2] or referer
    for stop in "/?#":
        rest = rest.partition(stop)[0]
    rest = rest.rpartition("@")[2]
    if rest.startswith("["):  # IPv6 literal, RFC 3986 §3.2.2
        return rest.partition("]")[0] + "]"
    return rest.partition(":")[0].lower()


def _add(rows: dict[str, Scratch], key: str, nbytes: int, visitor: str | None) -> None:
    s = rows.get(key)
    if s is None:
        s = rows[key] = Scratch()
    s.hits += 1
    s.bytes += nbytes
    if visitor is not None:
        s.visitors[visitor] = None


def tally(records: Iterable[Any], static: tuple[str, ...], count_4xx: bool) -> Tally:
    """Count one batch's records (those with an HTTP request) into every panel, line by line.

    `static`: lower-case path endings of static files; `count_4xx`: whether 4xx answers make
    visitors. Every table and visitor list is fed in line order."""
    out = Tally()
    rows = out.rows
    days_rows, hours_rows, requests_rows = rows["days"], rows["hours"], rows["requests"]
    static_rows, missing_rows, hosts_rows = rows["static"], rows["not_found"], rows["hosts"]
    os_rows, browsers_rows, referrers_rows = rows["os"], rows["browsers"], rows["referrers"]
    sites_rows, status_rows, endpoint_rows = rows["referring_sites"], rows["status"], rows["endpoints"]
    everyone = out.everyone
    day_names: dict[int, str] = {}
    sites: dict[str, str] = {}  # referrer -> site, within the batch
    paths: dict[str, tuple[str, bool]] = {}  # path -> (without its query, whether static)
    statuses: dict[int | None, str] = {}
    agents: dict[str, tuple[str, str]] = {}  # user agent -> (browser, OS), within the batch
    requests = sent = undated = 0
    for record in records:
        http = record.http
        if http is None:
            continue
        requests += 1
        # Sizes and statuses are ints (the parsers make them so); timestamps stay untyped (Any):
        # a parser may give an int, which mypyc would reject where a float is declared.
        size: int | None = http.bytes
        nbytes = 0 if size is None else size
        sent += nbytes
        status: int | None = http.status
        stamp: Any = record.ts
        ts = 0.0
        if stamp is None:
            undated += 1
            day = "-"
        else:
            ts = float(stamp)  # exact: an int timestamp is far below 2**53
            days = int(ts // 86400)
            found = day_names.get(days)
            if found is None:
                found = day_names[days] = time.strftime("%Y-%m-%d", time.gmtime(days * 86400))
            day = found
        agent: str | None = http.user_agent
        ip: str | None = http.ip
        # GoAccess's unique visitor: one (IP, date, user agent); 4xx answers do not make one.
        visitor: str | None = None
        if status is None or not 400 <= status < 500 or count_4xx:
            visitor = f"{ip}|{day}|{agent or ''}"
            everyone[visitor] = None
        if stamp is not None:
            _add(days_rows, day, nbytes, visitor)
            _add(hours_rows, _HOURS[int(ts % 86400) // 3600], nbytes, visitor)
        path: str | None = http.path
        if path is not None:
            reading = paths.get(path)
            if reading is None:
                bare = path.partition("?")[0]
                reading = paths[path] = (bare, bare.lower().endswith(static))
            bare, is_static = reading
            if status == 404:
                _add(missing_rows, path, nbytes, visitor)
            elif is_static:
                _add(static_rows, path, nbytes, visitor)
            else:
                _add(requests_rows, path, nbytes, visitor)
            latency: Any = http.latency_ms
            if latency is not None:
                method: str | None = http.method
                key = f"{method or '-'} {bare}"
                _add(endpoint_rows, key, nbytes, visitor)
                endpoint_rows[key].latencies.append(latency)
        if ip is not None:
            _add(hosts_rows, ip, nbytes, visitor)
        if agent:
            pair = agents.get(agent)
            if pair is None:
                pair = agents[agent] = browser_and_os(agent)
        else:
            pair = _OTHER
        _add(browsers_rows, pair[0], nbytes, visitor)
        _add(os_rows, pair[1], nbytes, visitor)
        referer: str | None = http.referer
        if referer:
            _add(referrers_rows, referer, nbytes, visitor)
            site = sites.get(referer)
            if site is None:
                site = sites[referer] = referring_site(referer)
            _add(sites_rows, site, nbytes, visitor)
        name = statuses.get(status)
        if name is None:
            name = statuses[status] = "-" if status is None else str(status)
        _add(status_rows, name, nbytes, visitor)
    out.requests, out.sent, out.undated = requests, sent, undated
    return out
