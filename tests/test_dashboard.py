"""The dashboard in a real browser (headless Debian chromium driven by selenium): the daemon's `/`
shows the count STATS reports and an injected error burst in its anomaly feed without a reload,
with the bearer token given to the page; `analyze --html` opened from disk shows the numbers
`analyze --json` prints. Screenshots are saved in each test's temp directory."""
from __future__ import annotations

import collections
import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from logtallyd.offline.analyze import run_analyze
from logtallyd.publish.dashboard import ASSETS
from tests.conftest import ServerProcess, require_tool, send_tcp
from tests.test_webreport import AGENTS, generate

# A burst fires within a second or two of event time: a 5 s spike window over 20 errors, and
# detectors that process a second once event time is 1 s past it.
CONFIG = """
[http]
listen = "127.0.0.1:0"
[pipeline]
workers = 1
event_lateness_s = 1
[history]
interval_s = 1
[detect.spike]
window_s = 5
threshold = 20
resolve_below = 5
"""
T0 = 1738404000  # 2025-02-01T10:00:00Z


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    require_tool("chromium")
    driver_path = require_tool("chromedriver", "/usr/lib/chromium/chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,2000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: Any) -> Any:
    """The browser on a blank page, its console emptied of what earlier tests' pages said."""
    chromium.get("about:blank")
    chromium.get_log("browser")
    return chromium


def wait_for(browser: Any, check: Callable[[Any], Any], what: str | Callable[[], str], timeout: float = 30) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.1).until(check)
    except TimeoutException:
        logs = [entry["message"] for entry in browser.get_log("browser")]
        what = what() if callable(what) else what
        raise AssertionError(f"the page never showed {what}; its console: {logs}") from None


def figure(browser: Any, name: str) -> str:
    """A card's raw value (`data-value`), as the page holds it."""
    return browser.execute_script(
        "const b = document.querySelector(arguments[0]); return b === null ? null : b.dataset.value;",
        f"#card-{name} b")


def errors_in_console(browser: Any) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def line(ts: int, severity: int, service: str, message: str) -> str:
    return f"<{8 + severity}>1 {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ts))} web1 {service} 1 - - {message}"


def test_live_page_shows_the_stats_count_and_a_burst_as_it_happens(start_server, browser: Any, tmp_path: Path) -> None:
    server = start_server(CONFIG)
    host, port = server.address("http")
    browser.get(f"http://{host}:{port}/")
    wait_for(browser, lambda b: figure(b, "received") == "0", "the first STATS")
    browser.execute_script("window.loadedOnce = true")  # gone if the page reloads

    calm = [line(T0 + i, 6, "checkout", f"order {i} paid") for i in range(60)]
    send_tcp(server.address("tcp"), ("\n".join(calm) + "\n").encode())
    received = server.wait_received(len(calm))["received"]
    wait_for(browser, lambda b: figure(b, "received") == str(received), f"received = {received}")

    burst = [line(T0 + 60, 3, "checkout", f"payment gateway returned 502 for order {i}") for i in range(30)]
    after = [line(T0 + 70, 6, "checkout", "order 61 paid")]  # moves event time past the burst
    send_tcp(server.address("tcp"), ("\n".join(burst + after) + "\n").encode())
    server.wait_received(len(calm) + len(burst) + len(after))
    deadline = time.monotonic() + 30
    while not (spikes := [e for e in server.command("EVENTS")["events"] if e["type"] == "error_spike"]):
        assert time.monotonic() < deadline, "the daemon saw no spike"
        time.sleep(0.1)
    row = wait_for(browser, lambda b: b.find_elements("css selector", '#events tr[data-type="error_spike"]'),
                   "the spike in the anomaly feed")[0]
    cells = [td.text for td in row.find_elements("css selector", "td")]
    assert cells[0] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(spikes[0]["ts"]))
    assert cells[1:4] == ["error_spike", spikes[0]["detector"], spikes[0]["key"]]
    assert f"count={spikes[0]['count']}" in cells[4]
    total = server.stats()
    wait_for(browser, lambda b: figure(b, "received") == str(total["received"]), "the new received count")
    assert figure(browser, "errors") == str(total["errors"]) == str(len(burst))
    # the level breakdown is the STATS one
    levels = {tr.find_elements("css selector", "td")[0].text: tr.find_elements("css selector", "td")[1].text
              for tr in browser.find_elements("css selector", "#by_level tbody tr")}
    assert levels == {k: f"{v:,}" for k, v in total["by_level"].items()}
    # the top tables are the TOP answers
    top = server.command("TOP service 10 all")["top"]
    wait_for(browser, lambda b: [[td.text for td in tr.find_elements("css selector", "td")][:2]
                                 for tr in b.find_elements("css selector", "#top-service tbody tr")]
             == [[row["value"], f"{row['count']:,}"] for row in top], "the TOP service table")
    # the charts' minutes come from /api/v1/history, written every second here
    wait_for(browser, lambda b: int(b.find_element("id", "chart-lines").get_attribute("data-points") or 0) >= 1,
             "a minute in the lines chart")
    assert browser.execute_script("return window.loadedOnce") is True
    assert errors_in_console(browser) == []
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 0


def test_a_fleet_node_shows_its_cluster_nodes(start_server, nats_server, browser: Any, tmp_path: Path) -> None:
    # [cluster] on: the page shows the CLUSTER table, its lines as nodes publish them.
    def node(name: str) -> ServerProcess:
        return start_server(CONFIG + "[cluster]\ndown_after_s = 30\n", extra_args=[
            "--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0", "--nats", nats_server.url, "--node", name])

    a, b = node("web-1"), node("web-2")
    send_tcp(a.address("tcp"), "".join(line(T0 + i, 6, "checkout", f"order {i}") + "\n" for i in range(30)).encode())
    send_tcp(b.address("tcp"), "".join(line(T0 + i, 6, "cart", f"item {i}") + "\n" for i in range(20)).encode())
    deadline = time.monotonic() + 60
    while [n["lines"] for n in a.command("CLUSTER")["nodes"]] != [30, 20]:
        assert time.monotonic() < deadline, a.command("CLUSTER")
        time.sleep(0.2)
    host, port = a.address("http")
    browser.get(f"http://{host}:{port}/")

    def rows(b: Any) -> list[list[str]]:
        # Read in one script: the panel's table is replaced as CLUSTER is asked again.
        return b.execute_script("return [...document.querySelectorAll('#cluster-nodes tbody tr')]"
                                ".map((tr) => [...tr.cells].map((td) => td.textContent))")

    seen: list[Any] = []
    wait_for(browser, lambda b: seen.append(rows(b)) or [(r[0], r[1], r[5]) for r in seen[-1]]
             == [("web-1", "up", "30"), ("web-2", "up", "20")], lambda: f"both nodes in the cluster panel (last {seen[-1:]})")
    assert browser.find_element("id", "cluster").is_displayed()
    assert errors_in_console(browser) == []
    browser.save_screenshot(str(tmp_path / "cluster.png"))


def test_without_a_cluster_the_panel_stays_hidden(start_server, browser: Any) -> None:
    server = start_server(CONFIG)
    host, port = server.address("http")
    browser.get(f"http://{host}:{port}/")
    wait_for(browser, lambda b: figure(b, "received") == "0", "the first STATS")
    time.sleep(1.0)  # the CLUSTER question is asked with the first STATS; give its answer time to land
    assert not browser.find_element("id", "cluster").is_displayed()
    assert browser.find_elements("css selector", "#cluster-nodes") == []


def test_the_page_and_its_assets_come_from_the_daemon(start_server) -> None:
    server = start_server('[http]\nlisten = "127.0.0.1:0"\n')
    host, port = server.address("http")
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=10) as response:
        page = response.read().decode()
    # every file the page names, less its icon (none: `data:,` keeps the browser from asking)
    assets = [a for a in re.findall(r'(?:src|href)="([^"]+)"', page) if a != "data:,"]
    assert sorted(assets) == sorted(f"static/{name}" for name in ASSETS if not name.endswith("LICENSE"))
    for name in ASSETS:
        with urllib.request.urlopen(f"http://{host}:{port}/static/{name}", timeout=10) as response:
            assert response.status == 200 and response.headers["Content-Type"] == ASSETS[name] and response.read()
    assert "//" not in "".join(assets)


def test_with_a_token_the_page_asks_for_it_and_then_streams(start_server, browser: Any, tmp_path: Path) -> None:
    token = "0123456789abcdef0123456789abcdef"
    token_file = tmp_path / "http.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    server = start_server(CONFIG.replace("[http]\n", f'[http]\ntoken_file = "{token_file}"\n'))
    send_tcp(server.address("tcp"), ("\n".join(line(T0 + i, 6, "api", "ok") for i in range(7)) + "\n").encode())
    server.wait_received(7)
    host, port = server.address("http")
    browser.get("about:blank")
    browser.get(f"http://{host}:{port}/")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    form = wait_for(browser, lambda b: b.find_element("id", "auth").is_displayed() and b.find_element("id", "auth"),
                    "the token form")
    form.find_element("id", "auth-token").send_keys(token)
    form.find_element("css selector", "button").click()
    wait_for(browser, lambda b: figure(b, "received") == "7", "received = 7 after the token")
    # a link carrying the token in its fragment works without the form, and drops it from the URL
    browser.execute_script("sessionStorage.clear()")
    browser.get("about:blank")  # a fresh load, not a jump within the page
    browser.get(f"http://{host}:{port}/#token={token}")
    wait_for(browser, lambda b: figure(b, "received") == "7", "received = 7 from #token=")
    assert "token" not in browser.current_url
    browser.save_screenshot(str(tmp_path / "dashboard-token.png"))


def access_lines() -> list[str]:
    """Two hours across midnight, one request every 4 s (so no batch spans the windows and none
    is late), with statuses and latencies that vary."""
    start = 1728514800  # 2024-10-09T23:00:00Z
    out = []
    for i in range(1800):
        ts = start + 4 * i
        status = (200, 200, 404, 500, 301)[i % 5]
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(ts))
        out.append(f'10.0.{i % 7}.{i % 3} - - [{when}] "GET /p{i % 9} HTTP/1.1" {status} {100 + i % 50} "-" '
                   f'"{AGENTS[i % len(AGENTS)]}" 0.{1 + i % 900:03d}')
    return out


def test_html_report_from_disk_shows_the_json_numbers(browser: Any, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "access.log"
    lines = access_lines()
    log.write_text("\n".join(lines) + "\n")
    config = tmp_path / "config.toml"
    config.write_text("[pipeline]\nbatch_lines = 100\n")
    page = tmp_path / "report.html"
    args = [str(log), "--workers", "0", "--events", "--config", str(config)]
    assert run_analyze([*args, "--html", str(page)]) == 0
    capsys.readouterr()
    assert run_analyze([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["late"] == 0 and out["received"] == len(lines)

    browser.get(page.as_uri())
    wait_for(browser, lambda b: figure(b, "received") is not None, "the cards")
    for name in ("received", "parsed", "errors", "late", "future"):
        assert figure(browser, name) == str(out[name]), name
    assert float(figure(browser, "error_rate")) == out["error_rate"]
    assert float(figure(browser, "rate_5xx")) == out["http"]["rate_5xx"]
    distinct = {tr.get_attribute("data-key"): tr.find_elements("css selector", "td")[2].text
                for tr in browser.find_elements("css selector", "#distinct tbody tr")}
    assert distinct["ip"] == f"{out['distinct']['ip']['lower']:,}–{out['distinct']['ip']['upper']:,}"
    top_ip = browser.find_elements("css selector", "#top-ip tbody tr")[0].find_elements("css selector", "td")
    assert [top_ip[0].text, top_ip[1].text] == [out["top"]["ip"][0]["value"], f"{out['top']['ip'][0]['count']:,}"]
    # per day and per hour: the lines of each, counted here from the file itself
    days = collections.Counter(time.strftime("%Y-%m-%d", time.gmtime(1728514800 + 4 * i)) for i in range(len(lines)))
    hours = collections.Counter(time.strftime("%Y-%m-%dT%Hh", time.gmtime(1728514800 + 4 * i)) for i in range(len(lines)))
    assert table_counts(browser, "per_day") == {k: f"{v:,}" for k, v in days.items()}
    assert table_counts(browser, "per_hour") == {k: f"{v:,}" for k, v in hours.items()}
    # GoAccess's panels, from the same embedded data
    assert table_counts(browser, "days") == {r["key"]: f"{r['hits']:,}" for r in out["web"]["panels"]["days"]["rows"]}
    assert len(browser.find_elements("css selector", "#events tbody tr")) == len(out["events"])
    assert int(browser.find_element("id", "chart-lines").get_attribute("data-points")) == len(hours)
    assert errors_in_console(browser) == []
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 0


def table_counts(browser: Any, panel: str) -> dict[str, str]:
    """First column -> the first count column of a panel's table (the bar column skipped)."""
    out = {}
    for tr in browser.find_elements("css selector", f"#{panel} tbody tr"):
        cells = [td.text for td in tr.find_elements("css selector", "td")]
        out[cells[0]] = cells[2] if cells[1] == "" else cells[1]
    return out


def test_html_report_draws_every_web_panel(browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "access.log"
    log.write_text("\n".join(generate(5000, seed=11)) + "\n")
    page = tmp_path / "report.html"
    assert run_analyze([str(log), "--workers", "0", "--html", str(page)]) == 0
    capsys.readouterr()
    assert run_analyze([str(log), "--workers", "0", "--json"]) == 0
    web = json.loads(capsys.readouterr().out)["web"]
    browser.get(page.as_uri())
    wait_for(browser, lambda b: b.find_elements("id", "endpoints"), "the web panels")
    for name in ("days", "hours", "requests", "static", "not_found", "hosts", "os", "browsers", "referrers",
                 "referring_sites", "endpoints"):
        rows = web["panels"][name]["rows"]
        shown = table_counts(browser, name)
        assert list(shown)[:len(rows)] == [str(r["key"]) for r in rows], name
        assert list(shown.values())[:len(rows)] == [f"{r['hits']:,}" for r in rows], name
    classes = [tr.find_element("css selector", "td").text
               for tr in browser.find_elements("css selector", "#status tbody tr:not(.sub)")]
    assert classes == [group["class"] for group in web["status_classes"]]
    assert errors_in_console(browser) == []
    browser.save_screenshot(str(tmp_path / "report-web.png"))


def test_log_text_is_shown_as_text_never_as_markup(browser: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Log lines are anyone's: a path that closes the data's script element and opens an image
    with a handler stays a string in the report's JSON and a table cell's text."""
    hostile = "/x</script><img/src=x/onerror=window.pwned=1><!--"
    log = tmp_path / "access.log"
    log.write_text(f'10.0.0.1 - - [10/Oct/2024:00:00:00 +0000] "GET {hostile} HTTP/1.1" 200 5 "-" "curl/8.5.0" 0.001\n')
    page = tmp_path / "report.html"
    assert run_analyze([str(log), "--workers", "0", "--html", str(page)]) == 0
    capsys.readouterr()
    browser.get(page.as_uri())
    wait_for(browser, lambda b: b.find_elements("css selector", "#requests tbody tr"), "the requests panel")
    assert table_counts(browser, "requests") == {hostile: "1"}
    assert browser.execute_script("return [document.images.length, window.pwned === undefined]") == [0, True]
