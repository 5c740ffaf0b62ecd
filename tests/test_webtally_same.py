"""The web report's per-line tally (`webtally.tally`, pure and compiled) gives exactly the partials
of the column-wise `collect` it replaced (frozen below): the same wire bytes, so the same rows,
sketches and overflow, on generated batches that bend every field (undated lines, several days,
4xx with and without `visitors_4xx`, missing paths, agents and referrers, latencies, static
paths, status `-`) and on batches past `max_keys`."""
from __future__ import annotations

import random
import time
from typing import Any, Iterable

import pytest

from logtallyd import native
from logtallyd.records import Http, Record
from logtallyd.stats import webreport, webtally
from logtallyd.stats.webreport import _decoder, PANELS, WebConfig, WebPartial, _Row, browser_and_os, referring_site
from logtallyd.stats.sketches import ds, hll_type


# -- the reference: collect as it was, columns filled per line and counted per panel ----------


def _update(union: Any, keys: dict[str, None], lg_k: int) -> None:
    if keys:
        sk = ds.hll_sketch(lg_k, hll_type())
        for key in keys:
            sk.update(key)
        union.update(sk)


def _seal(s: Any, lg_k: int, kll_k: int) -> _Row:
    visitors = None
    if s.visitors:
        visitors = ds.hll_union(lg_k)
        _update(visitors, s.visitors, lg_k)
    latency = None
    if s.latencies:
        import numpy as np

        latency = ds.kll_floats_sketch(kll_k)
        latency.update(np.asarray(s.latencies, dtype=np.float32))
    return _Row(s.hits, s.bytes, visitors, latency)

class _OldScratch:
    """One panel key within a batch: plain counters and its visitors' keys, in the order first seen.

    A dict rather than a set: an HLL estimate (HIP) depends on the order of its updates, and a
    set's order follows the per-process string hash, so a report would change with the workers."""

    __slots__ = ("hits", "bytes", "visitors", "latencies")

    def __init__(self) -> None:
        self.hits = 0
        self.bytes = 0
        self.visitors: dict[str, None] = {}
        self.latencies: list[float] = []


def old_collect(records: Iterable[Record], config: WebConfig) -> WebPartial:
    """The web panels of one batch's parsed records (those with an HTTP request)."""
    out = WebPartial(config)
    scratch: dict[str, dict[str, _OldScratch]] = {name: {} for name in PANELS}
    static = tuple(ext.lower() for ext in config.static_extensions)
    # One pass per line builds aligned columns (None: the panel skips the line); each panel is
    # then counted in one tight loop over its column. Per line this costs a few list appends
    # instead of nine function calls; keys and visitors are still met in line order, so every
    # table and sketch is fed as before.
    nbytes_col: list[int] = []
    visitor_col: list[str | None] = []
    day_col: list[str | None] = []
    hour_col: list[str | None] = []
    request_col: list[str | None] = []
    static_col: list[str | None] = []
    missing_col: list[str | None] = []
    host_col: list[str | None] = []
    browser_col: list[str] = []
    os_col: list[str] = []
    referrer_col: list[str | None] = []
    site_col: list[str | None] = []
    status_col: list[str] = []
    endpoints: list[tuple[str, int, str | None, float]] = []  # rare: only lines with a latency
    day_names: dict[int, str] = {}
    sites: dict[str, str] = {}  # referrer -> site, within the batch
    statuses: dict[int | None, str] = {}
    count_4xx = config.visitors_4xx
    requests = sent = undated = 0
    for record in records:
        http = record.http
        if http is None:
            continue
        requests += 1
        nbytes = http.bytes or 0
        sent += nbytes
        status = http.status
        ts = record.ts
        if ts is None:
            undated += 1
            day = "-"
            day_col.append(None)
            hour_col.append(None)
        else:
            days = int(ts // 86400)
            day = day_names.get(days)  # type: ignore[assignment]
            if day is None:
                day = day_names[days] = time.strftime("%Y-%m-%d", time.gmtime(days * 86400))
            day_col.append(day)
            hour_col.append(_HOURS[int(ts % 86400) // 3600])
        agent = http.user_agent
        # GoAccess's unique visitor: one (IP, date, user agent); 4xx answers do not make one.
        visitor: str | None = f"{http.ip}|{day}|{agent or ''}"
        if status is not None and 400 <= status < 500 and not count_4xx:
            visitor = None
        nbytes_col.append(nbytes)
        visitor_col.append(visitor)
        path = http.path
        if path is None:
            missing_col.append(None)
            static_col.append(None)
            request_col.append(None)
        else:
            bare = path.partition("?")[0]
            if status == 404:
                missing_col.append(path)
                static_col.append(None)
                request_col.append(None)
            elif bare.lower().endswith(static):
                missing_col.append(None)
                static_col.append(path)
                request_col.append(None)
            else:
                missing_col.append(None)
                static_col.append(None)
                request_col.append(path)
            if http.latency_ms is not None:
                endpoints.append((f"{http.method or '-'} {bare}", nbytes, visitor, http.latency_ms))
        host_col.append(http.ip)
        browser, os_family = browser_and_os(agent) if agent else ("Other", "Other")
        browser_col.append(browser)
        os_col.append(os_family)
        referer = http.referer
        if referer:
            referrer_col.append(referer)
            site = sites.get(referer)
            if site is None:
                site = sites[referer] = referring_site(referer)
            site_col.append(site)
        else:
            referrer_col.append(None)
            site_col.append(None)
        name = statuses.get(status)
        if name is None:
            name = statuses[status] = "-" if status is None else str(status)
        status_col.append(name)
    out.requests, out.bytes, out.undated = requests, sent, undated
    everyone = dict.fromkeys(v for v in visitor_col if v is not None)  # ordered, as _Scratch.visitors
    # The order panels were filled in before: it fixes nothing between panels, but keep it.
    for panel, column in (
        ("days", day_col), ("hours", hour_col), ("not_found", missing_col), ("static", static_col),
        ("requests", request_col), ("hosts", host_col), ("browsers", browser_col), ("os", os_col),
        ("referrers", referrer_col), ("referring_sites", site_col), ("status", status_col),
    ):
        _count_column(scratch[panel], column, nbytes_col, visitor_col)
    rows = scratch["endpoints"]
    for key, nbytes, visitor, latency in endpoints:
        s = rows.get(key)
        if s is None:
            s = rows[key] = _OldScratch()
        s.hits += 1
        s.bytes += nbytes
        if visitor is not None:
            s.visitors[visitor] = None
        s.latencies.append(latency)

    lg_k, kll_k = config.lg_k, config.kll_k
    _update(out.visitors, everyone, lg_k)
    for name, rows in scratch.items():
        panel = out.panels[name]
        other = other_keys = None
        if len(rows) > panel.limit:
            # Fold the lightest keys before any sketch is built for them (as `_Panel.merge`
            # would fold them after): a batch of unique client IPs costs counters, not sketches.
            ranked = sorted((-s.hits, key) for key, s in rows.items())
            rest = _OldScratch()
            other_keys = ds.hll_union(lg_k)
            names: dict[str, None] = {}
            for _, key in ranked[panel.limit:]:
                s = rows.pop(key)
                rest.hits += s.hits
                rest.bytes += s.bytes
                rest.visitors.update(s.visitors)
                rest.latencies += s.latencies
                names[key] = None
            _update(other_keys, names, lg_k)
            other = _seal(rest, lg_k, kll_k)
        sealed = {key: _seal(s, lg_k, kll_k) for key, s in rows.items()}
        panel.merge(sealed, other, other_keys, lg_k)
    return out


_HOURS = [f"{h:02d}" for h in range(24)]


def _count_column(
    rows: dict[str, _OldScratch], keys: list[str | None], nbytes: list[int], visitors: list[str | None]
) -> None:
    """Count one panel's column of keys (None: not in this panel) with the lines' bytes and visitors."""
    get = rows.get
    for key, n, visitor in zip(keys, nbytes, visitors):
        if key is None:
            continue
        s = get(key)
        if s is None:
            s = rows[key] = _OldScratch()
        s.hits += 1
        s.bytes += n
        if visitor is not None:
            s.visitors[visitor] = None



# -- generated batches ------------------------------------------------------------------------

AGENTS = [None, "", "curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
          "Googlebot/2.1 (+http://www.google.com/bot.html)", "a|b|c"]
PATHS = [None, "/", "/index.html", "/static/a.CSS", "/app.js?v=3", "/img/x.png", "/api/items?id=7", "/a?b.css",
         "/x.tar.gz", "/robots.txt", "/%7Euser/", "/Über"]
REFERERS = [None, "", "-", "https://www.example.com/a?b", "http://user@Search.Example.org:8080/q",
            "https://[2001:db8::1]:443/", "android-app://com.x", "no-scheme"]
IPS = ["10.0.0.1", "10.0.0.2", "2001:db8::7", "host.example.com", "1|2", None]
STATUSES = [200, 200, 200, 201, 301, 304, 400, 403, 404, 404, 499, 500, 503, None, 0, 999]


def batch(rng: random.Random, n: int, *, unique_ips: bool = False, undated: float = 0.05,
          days: int = 2, latency: float = 0.3) -> list[Record]:
    out = []
    base = rng.choice([1_740_787_200 - 30, -86_400 * 3 - 7])  # just before a midnight; before 1970 too
    for i in range(n):
        ts = None if rng.random() < undated else base + rng.random() * 86_400 * days
        if ts is not None and rng.random() < 0.05:
            ts = int(ts)  # a whole number, as some parsers give
        ip = f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}.{i}" if unique_ips else rng.choice(IPS)
        http = Http(
            ip=ip, method=rng.choice([None, "GET", "POST", "HEAD"]), path=rng.choice(PATHS),
            status=rng.choice(STATUSES), bytes=rng.choice([None, 0, rng.randrange(10**6), rng.randrange(10**12)]),
            referer=rng.choice(REFERERS), user_agent=rng.choice(AGENTS),
            latency_ms=rng.choice([None, 0.0, rng.random() * 1000, 5]) if rng.random() < latency else None,
        )
        out.append(Record("access", "", ts, http=http))
        if rng.random() < 0.05:
            out.append(Record("rfc5424", "not http", ts))
    return out


CONFIGS = [WebConfig(), WebConfig(visitors_4xx=True), WebConfig(max_keys=24, max_days=1, lg_k=4, kll_k=8)]


def _tallies() -> list[Any]:
    """The pure module, and its compiled twin where built."""
    out = [webtally]
    compiled = native.twin("logtallyd.stats.webtally")
    if compiled is not None:
        out.append(compiled)
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("config", CONFIGS, ids=["default", "4xx", "tiny"])
def test_collect_gives_the_old_partial(seed: int, config: WebConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    records = batch(rng, rng.choice([0, 1, 7, 300, 2500]), unique_ips=seed % 3 == 0,
                    undated=rng.choice([0.0, 0.05, 1.0]), days=rng.choice([1, 2, 40]))
    expected = old_collect(records, config).to_bytes()
    for module in _tallies():
        monkeypatch.setattr(webreport, "tally", module.tally)
        monkeypatch.setattr(webreport, "Scratch", module.Scratch)
        got = webreport.collect(records, config)
        assert canonical(got.to_bytes()) == canonical(expected), module.__name__
    # and so the same summary, after a round trip and a merge with another batch
    other = batch(random.Random(seed + 100), 500)
    old = WebPartial.from_bytes(expected, config)
    old.merge(old_collect(other, config))
    new = WebPartial.from_bytes(got.to_bytes(), config)
    new.merge(webreport.collect(other, config))
    assert without_quantiles(webreport.summarise(new, 10)) == without_quantiles(webreport.summarise(old, 10))


def canonical(data: bytes) -> Any:
    """A partial's wire form, byte for byte, except latency sketches: KLL compaction flips coins,
    so a sketch that compacted is compared by its count, minimum and maximum."""
    wire = _decoder.decode(data)

    def row(rw: Any) -> Any:
        if rw is None or not rw.latency:
            return rw
        kll = ds.kll_floats_sketch.deserialize(rw.latency)
        exact = None if kll.is_estimation_mode() else rw.latency
        return (rw.key, rw.hits, rw.sent, rw.visitors, kll.n, kll.get_min_value(), kll.get_max_value(), exact)

    return (wire.requests, wire.sent, wire.undated, wire.visitors,
            {name: ([row(r) for r in p.rows], row(p.other), p.other_keys) for name, p in wire.panels.items()})


def without_quantiles(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without the latency quantiles (random past compaction, see `canonical`)."""
    for group in ("rows", "other"):
        rows = summary["panels"]["endpoints"][group]
        for r in rows if isinstance(rows, list) else [rows] if rows else []:
            for q in ("p50", "p95", "p99"):
                r.pop(q)
    return summary


def test_collect_counts_what_it_is_given() -> None:
    """Not only equal to the old code: a batch of known lines gives the known counts."""
    records = [
        Record("access", "", 1_740_787_200.5, http=Http(ip="10.0.0.1", path="/a", status=200, bytes=10, user_agent="curl/8.5.0")),
        Record("access", "", 1_740_787_201.0, http=Http(ip="10.0.0.1", path="/a", status=404, bytes=5, user_agent="curl/8.5.0")),
        Record("access", "", None, http=Http(ip="10.0.0.2", path="/s.css", status=200, bytes=1, referer="https://x.org/p")),
        Record("rfc5424", "no request", 1_740_787_200.0),
    ]
    summary = webreport.summarise(webreport.collect(records, WebConfig()))
    assert (summary["requests"], summary["bytes"], summary["undated"], summary["visitors"]) == (3, 16, 1, 2)
    panels = summary["panels"]
    assert [(r["key"], r["hits"], r["bytes"], r["visitors"]) for r in panels["requests"]["rows"]] == [("/a", 1, 10, 1)]
    assert [(r["key"], r["hits"]) for r in panels["not_found"]["rows"]] == [("/a", 1)]
    assert [(r["key"], r["hits"]) for r in panels["static"]["rows"]] == [("/s.css", 1)]
    assert [(r["key"], r["hits"], r["visitors"]) for r in panels["days"]["rows"]] == [("2025-03-01", 2, 1)]
    assert [(r["key"], r["hits"]) for r in panels["hosts"]["rows"]] == [("10.0.0.1", 2), ("10.0.0.2", 1)]
    assert [(r["key"], r["hits"]) for r in panels["browsers"]["rows"]] == [("curl", 2), ("Other", 1)]
    assert [(r["key"], r["hits"]) for r in panels["referring_sites"]["rows"]] == [("x.org", 1)]


def test_panels_agree() -> None:
    assert tuple(PANELS) == webtally.PANELS


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("config", CONFIGS, ids=["default", "4xx", "tiny"])
def test_merging_bytes_is_merging_the_decoded_partial(seed: int, config: WebConfig) -> None:
    """`merge_bytes` (analyze's main process) skips building the other partial's unions; the
    merged partial is the one `merge(from_bytes(...))` gives."""
    rng = random.Random(seed)
    parts = [webreport.collect(batch(rng, rng.choice([1, 50, 800]), unique_ips=rng.random() < 0.3,
                                     days=rng.choice([1, 3])), config).to_bytes() for _ in range(6)]
    decoded, lean = WebPartial(config), WebPartial(config)
    for data in parts:
        decoded.merge(WebPartial.from_bytes(data, config))
        lean.merge_bytes(data)
    assert canonical(lean.to_bytes()) == canonical(decoded.to_bytes())
    assert without_quantiles(webreport.summarise(lean, 20)) == without_quantiles(webreport.summarise(decoded, 20))


def test_a_partial_straight_from_collect_merges_and_reads_as_a_decoded_one() -> None:
    """A batch's rows hold its sketches (not unions) until merged: merging into such a partial,
    and reading it, gives what the same partial decoded from its bytes gives."""
    config = WebConfig()
    a, b = (webreport.collect(batch(random.Random(seed), 400), config) for seed in (1, 2))
    decoded = WebPartial.from_bytes(a.to_bytes(), config)
    assert without_quantiles(webreport.summarise(a)) == without_quantiles(webreport.summarise(decoded))
    decoded.merge(WebPartial.from_bytes(b.to_bytes(), config))
    a.merge(b)
    assert without_quantiles(webreport.summarise(a)) == without_quantiles(webreport.summarise(decoded))
