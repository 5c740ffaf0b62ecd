"""The web panels core (logtallyd.stats.webreport) against a reference computed here on generated
combined-format lines: exact hits and bytes, visitors within the sketch's stated error."""
from __future__ import annotations

import collections
from pathlib import Path
import random
import time

import msgspec
import pytest

from logtallyd.parsing.access import parse_access
from logtallyd.records import Record
from logtallyd.stats.webreport import (WebConfig, WebPartial, browser_and_os, collect, merge_all, referring_site,
                                       summarise, visitor_rel_err)

CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
CURL = "curl/8.5.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.2 Mobile/15E148 Safari/604.1")
AGENTS = [CHROME_WIN, FIREFOX_LINUX, CURL, IPHONE]
PATHS = ["/", "/index.html", "/api/items?id=3", "/app.js", "/style.css", "/logo.PNG", "/missing", "/login"]
REFERERS = ["-", "https://www.example.com/page", "http://search.example.org/?q=x", "-"]
START = 1_728_518_400  # 2024-10-10T00:00:00Z


def generate(n: int, seed: int = 7, ips: int = 200) -> list[str]:
    rnd = random.Random(seed)
    lines = []
    for i in range(n):
        ts = START + rnd.randrange(3 * 86400)
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(ts))
        path = rnd.choice(PATHS)
        status = 404 if path == "/missing" else rnd.choice([200, 200, 200, 301, 403, 500])
        size = rnd.randrange(50, 5000)
        ip = f"10.0.{rnd.randrange(ips)}.{i % 3}"  # ips x 3 hosts, below the bound
        referer, agent = rnd.choice(REFERERS), rnd.choice(AGENTS)
        lines.append(f'{ip} - - [{when}] "GET {path} HTTP/1.1" {status} {size} "{referer}" "{agent}" 0.{rnd.randrange(1, 999):03d}')
    return lines


def parse_all(lines: list[str]) -> list[Record]:
    records = [parse_access(line) for line in lines]
    assert all(r is not None for r in records)
    return records  # type: ignore[return-value]


def by_batches(records: list[Record], size: int, config: WebConfig) -> WebPartial:
    """As analyze does it: one partial per batch, over the wire, merged in order."""
    out = WebPartial(config)
    for start in range(0, len(records), size):
        out.merge(WebPartial.from_bytes(collect(records[start:start + size], config).to_bytes(), config))
    return out


def reference(records: list[Record]) -> dict[str, collections.Counter]:
    ref: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    visitors: dict[str, set] = collections.defaultdict(set)
    for r in records:
        h = r.http
        assert h is not None and r.ts is not None and h.path is not None
        day = time.strftime("%Y-%m-%d", time.gmtime(r.ts))
        hour = time.strftime("%H", time.gmtime(r.ts))
        bare = h.path.partition("?")[0].lower()
        panel = ("not_found" if h.status == 404 else
                 "static" if bare.endswith((".js", ".css", ".png")) else "requests")
        for name, key in (("days", day), ("hours", hour), (panel, h.path), ("hosts", h.ip),
                          ("status", str(h.status))):
            ref[name][key] += 1
            ref[name + "_bytes"][key] += h.bytes or 0
        if h.referer:
            ref["referrers"][h.referer] += 1
            ref["referring_sites"][referring_site(h.referer)] += 1
        if not 400 <= (h.status or 0) < 500:
            visitors["all"].add((h.ip, day, h.user_agent))
            visitors[day].add((h.ip, day, h.user_agent))
    ref["visitors"] = collections.Counter({k: len(v) for k, v in visitors.items()})
    return ref


def rows_of(summary: dict, panel: str, field: str = "hits") -> dict[str, int]:
    return {row["key"]: row[field] for row in summary["panels"][panel]["rows"]}


@pytest.mark.parametrize("batch", [1, 97, 5000])
def test_panels_match_the_reference(batch: int) -> None:
    records = parse_all(generate(3000))
    ref = reference(records)
    config = WebConfig()
    summary = summarise(by_batches(records, batch, config))
    assert summary["requests"] == 3000
    assert summary["bytes"] == sum(r.http.bytes for r in records)  # type: ignore[union-attr, misc]
    for panel in ("days", "hours", "requests", "static", "not_found", "hosts", "status"):
        assert rows_of(summary, panel) == dict(ref[panel]), panel
        assert rows_of(summary, panel, "bytes") == dict(ref[panel + "_bytes"]), panel
    assert rows_of(summary, "referrers") == dict(ref["referrers"])
    assert rows_of(summary, "referring_sites") == {"www.example.com": ref["referring_sites"]["www.example.com"],
                                                   "search.example.org": ref["referring_sites"]["search.example.org"]}
    assert set(rows_of(summary, "static")) == {"/app.js", "/style.css", "/logo.PNG"}
    assert list(rows_of(summary, "days")) == ["2024-10-10", "2024-10-11", "2024-10-12"]  # time order
    # Visitors: within 3 standard errors of the sketch (lg_k=12: 1.6%) of the exact count.
    err = visitor_rel_err(config.lg_k)
    assert 0.015 < err < 0.017
    exact = ref["visitors"]["all"]
    assert abs(summary["visitors"] - exact) <= 3 * err * exact
    for day, est in rows_of(summary, "days", "visitors").items():
        assert abs(est - ref["visitors"][day]) <= 3 * err * ref["visitors"][day]
    # 4xx answers make no visitor (GoAccess's default): the 404 panel has none.
    assert set(rows_of(summary, "not_found", "visitors").values()) == {0}
    classes = {g["class"]: g["hits"] for g in summary["status_classes"]}
    assert classes["4xx Client errors"] == ref["status"]["403"] + ref["status"]["404"]


def test_latency_per_endpoint() -> None:
    lines = [f'1.2.3.4 - - [10/Oct/2024:13:55:{i % 60:02d} +0000] "GET /api?x={i} HTTP/1.1" 200 10 "-" "x" '
             f'{(i + 1) / 1000:.3f}' for i in range(100)]
    summary = summarise(by_batches(parse_all(lines), 30, WebConfig()))
    (row,) = summary["panels"]["endpoints"]["rows"]
    assert (row["key"], row["hits"]) == ("GET /api", 100)
    assert row["p50"] == pytest.approx(50.0, abs=1.01) and row["max"] == pytest.approx(100.0)
    assert row["p99"] == pytest.approx(99.0, abs=1.01)


def test_merge_is_commutative_and_associative_below_the_bound() -> None:
    records = parse_all(generate(900, seed=3))
    config = WebConfig()
    parts = [collect(records[i:i + 300], config).to_bytes() for i in (0, 300, 600)]

    def fresh(i: int) -> WebPartial:
        return WebPartial.from_bytes(parts[i], config)

    left = fresh(0)
    left.merge(fresh(1))
    left.merge(fresh(2))
    right = fresh(1)
    right.merge(fresh(2))
    grouped = fresh(0)
    grouped.merge(right)
    swapped = merge_all([fresh(2), fresh(0), fresh(1)], config)
    # Hits and bytes are the same whatever the grouping; visitor estimates of a union depend on
    # how the sketches were combined (HLL estimators), within the stated error.
    err = 3 * visitor_rel_err(12)
    expected = summarise(collect(records, config))
    for candidate in map(summarise, (left, grouped, swapped)):
        for name in expected["panels"]:
            assert rows_of(candidate, name) == rows_of(expected, name)
            assert rows_of(candidate, name, "bytes") == rows_of(expected, name, "bytes")
            for key, est in rows_of(candidate, name, "visitors").items():
                assert abs(est - rows_of(expected, name, "visitors")[key]) <= err * est
        assert abs(candidate["visitors"] - expected["visitors"]) <= err * expected["visitors"]
    # Below a few hundred visitors a sketch holds exact coupons: every grouping agrees exactly.
    assert rows_of(summarise(left), "hours", "visitors") == rows_of(summarise(grouped), "hours", "visitors")
    once = collect(records, config)
    assert summarise(WebPartial.from_bytes(once.to_bytes(), config)) == summarise(once)


def test_tables_are_bounded_and_overflow_is_counted() -> None:
    config = WebConfig(max_keys=24)
    # Exactly at the bound: 24 hosts, no overflow row.
    at = [f'10.0.0.{i} - - [10/Oct/2024:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "x"' for i in range(24)]
    summary = summarise(by_batches(parse_all(at), 5, config))
    assert summary["panels"]["hosts"]["other"] is None and len(summary["panels"]["hosts"]["rows"]) == 24
    # 1,000 hosts, one heavy: 24 rows kept (the heavy one among them), the rest folded and counted.
    many = at + [f'10.1.{i // 250}.{i % 250} - - [10/Oct/2024:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "x"'
                 for i in range(976)] + ['10.9.9.9 - - [10/Oct/2024:13:55:37 +0000] "GET / HTTP/1.1" 200 1 "-" "x"'] * 50
    merged = by_batches(parse_all(many), 100, config)
    assert len(merged.panels["hosts"].rows) == 24
    hosts = summarise(merged, top=5)["panels"]["hosts"]
    assert hosts["rows"][0] == {"key": "10.9.9.9", "hits": 50, "visitors": 1, "bytes": 50}
    assert len(hosts["rows"]) == 5
    assert hosts["hits"] == 1050 and hosts["other"]["hits"] == 1050 - sum(r.hits for r in merged.panels["hosts"].rows.values())
    assert abs(hosts["other"]["keys"] - 977) <= 3 * visitor_rel_err(12) * 977
    assert abs(hosts["keys"] - 1001) <= 3 * visitor_rel_err(12) * 1001


def test_limits_are_checked_on_the_fields() -> None:
    assert msgspec.convert({"max_keys": 24}, WebConfig).max_keys == 24
    with pytest.raises(msgspec.ValidationError, match="max_keys"):
        msgspec.convert({"max_keys": 23}, WebConfig)
    with pytest.raises(msgspec.ValidationError, match="lg_k"):
        msgspec.convert({"lg_k": 17}, WebConfig)


@pytest.mark.parametrize(("agent", "browser", "os_family"), [
    (CHROME_WIN, "Chrome", "Windows"),
    (FIREFOX_LINUX, "Firefox", "Linux"),
    (CURL, "curl", "Other"),
    (IPHONE, "Mobile Safari", "iOS"),
    ("", "Other", "Other"),
])
def test_user_agent_families(agent: str, browser: str, os_family: str) -> None:
    assert browser_and_os(agent) == (browser, os_family)


def test_browser_panels_from_records() -> None:
    lines = [f'1.1.1.{i} - - [10/Oct/2024:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "{ua}"'
             for i, ua in enumerate([CHROME_WIN, CHROME_WIN, FIREFOX_LINUX, CURL, IPHONE])]
    lines.append('1.1.1.9 - - [10/Oct/2024:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "-"')
    summary = summarise(collect(parse_all(lines), WebConfig()))
    assert rows_of(summary, "browsers") == {"Chrome": 2, "Firefox": 1, "curl": 1, "Mobile Safari": 1, "Other": 1}
    assert rows_of(summary, "os") == {"Windows": 2, "Linux": 1, "iOS": 1, "Other": 2}


@pytest.mark.parametrize(("referer", "site"), [
    ("https://www.Example.com/page?q=1", "www.example.com"),
    ("http://user:pw@host.example:8080/x", "host.example"),
    ("https://[2001:db8::1]:443/", "[2001:db8::1]"),
    ("android-app://com.google.android.gm", "com.google.android.gm"),
    ("example.net/path", "example.net"),
])
def test_referring_site(referer: str, site: str) -> None:
    assert referring_site(referer) == site


def test_records_without_http_or_time() -> None:
    config = WebConfig()
    summary = summarise(collect([Record(format="json", message="x")], config))
    assert summary["requests"] == 0
    no_time = Record(format="json", message="x", http=parse_all(generate(1))[0].http)
    summary = summarise(collect([no_time], config))
    assert (summary["requests"], summary["undated"], summary["panels"]["days"]["rows"]) == (1, 1, [])


# Browsers, systems, bots and tools of many kinds, old and new.
MANY_AGENTS = [
    CHROME_WIN, FIREFOX_LINUX, CURL, IPHONE, "",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Opera/9.80 (Windows NT 6.0) Presto/2.12.388 Version/12.14",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 OPR/105.0.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Wget/1.21.3", "python-requests/2.31.0", "Go-http-client/1.1", "Apache-HttpClient/4.5.13 (Java/17.0.8)",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/2.2 Chrome/63.0.3239.84 TV Safari/537.36",
    "Dalvik/2.1.0 (Linux; U; Android 11; Pixel 5 Build/RQ3A.210805.001.A1)",
    "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", "Lynx/2.8.9rel.1 libwww-FM/2.14", "-", "x",
    "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.14977",
]


def test_rules_compiled_as_tried_read_as_all_compiled() -> None:
    """browser_and_os compiles ua-parser's rules lazily (worker start-up); ua-parser's own global
    parser compiles them all first. Same rules, same order: the same readings."""
    import ua_parser

    domains = ua_parser.Domain.USER_AGENT | ua_parser.Domain.OS
    agents = list(MANY_AGENTS)
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "filebeat-apache-access"
    for path in sorted(corpus.glob("*.log")) if corpus.is_dir() else []:
        agents += [line.rsplit('"', 2)[-2] for line in path.read_text(errors="replace").splitlines() if line.count('"') >= 6]
    families = set()
    for agent in agents:
        eager = ua_parser.parser(agent, domains)
        expected = (eager.user_agent.family if eager.user_agent else "Other", eager.os.family if eager.os else "Other")
        assert browser_and_os(agent) == expected, agent
        families.add(expected)
    assert len(families) > 20  # the agents above are of many kinds
