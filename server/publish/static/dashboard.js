// The logtally dashboard: the same panels live (the daemon's `/`: the JSON API for the first
// state, its event stream after) and in `analyze --html` (the data embedded in the page).
// Log data is untrusted: every value goes into the page as text, never as markup.
(function () {
  "use strict";

  // -- numbers, one style (the text report's): 1,234  4.8%  67.1 MiB  2025-02-01T10:00:00Z --------
  const count = (n) => (n === null || n === undefined ? "-" : Math.round(n).toLocaleString("en-US"));
  const percent = (f) => (f === null || f === undefined ? "-" : (f * 100).toFixed(1) + "%");
  const millis = (ms) => (ms === null || ms === undefined ? "-" : ms < 100 ? ms.toFixed(1) : count(ms));
  const isoTime = (ts) => (ts === null || ts === undefined ? "-" : new Date(ts * 1000).toISOString().replace(/\.\d+Z$/, "Z"));
  function size(n) {
    if (n === null || n === undefined) return "-";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let v = n, i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return i === 0 ? Math.trunc(v) + " B" : v.toFixed(1) + " " + units[i];
  }
  // A TOP row's count: exact, or the range the true count lies in (a sketch past the exact budget).
  function rowCount(row, key) {
    if (key === undefined) key = "count";
    if (row[key] !== undefined) return count(row[key]);
    const prefix = key === "count" ? "" : key + "_";
    return count(row[prefix + "lower"]) + "–" + count(row[prefix + "upper"]);
  }
  const rowShare = (row) => (row.approximate && row.share !== null && row.share !== undefined ? "≥" : "") + percent(row.share);

  // -- the page ---------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  function table(headers, rows, attrs) {
    const head = el("tr", {}, ...headers.map((h) => el("th", {}, h)));
    const body = el("tbody", {}, ...rows.map((r) => el("tr", r.attrs || {}, ...r.cells.map((c) => el("td", {}, c)))));
    return el("table", attrs || {}, el("thead", {}, head), body);
  }
  function panel(id, title, ...content) {
    return el("div", { id: id, class: "panel" }, el("h3", {}, title), ...content);
  }
  function setStatus(text, bad) {
    const node = $("status");
    node.textContent = text;
    node.className = bad ? "note bad" : "note";
  }

  // -- panels -----------------------------------------------------------------------------------
  function renderCards(r, rate) {
    const http = r.http || {};
    const lat = http.latency_ms || {};
    const cards = [
      ["received", r.received, count(r.received)],
      ["parsed", r.parsed, count(r.parsed)],
      ["rejected", sumOf(r.rejected), count(sumOf(r.rejected))],
      ["errors", r.errors, count(r.errors)],
      ["error_rate", r.error_rate, percent(r.error_rate)],
      ["lines_per_s", rate, rate === null ? "-" : rate >= 100 ? count(rate) : rate.toFixed(rate < 1 ? 3 : 1)],
      ["latency_p50", lat.p50, millis(lat.p50)],
      ["latency_p95", lat.p95, millis(lat.p95)],
      ["latency_p99", lat.p99, millis(lat.p99)],
      ["requests", http.requests, count(http.requests)],
      ["rate_5xx", http.rate_5xx, percent(http.rate_5xx)],
      ["late", r.late, count(r.late)],
      ["future", r.future, count(r.future)],
    ];
    const names = {
      received: "lines received", parsed: "parsed", rejected: "rejected", errors: "errors", error_rate: "error rate",
      lines_per_s: LIVE ? "lines/s now" : "lines/s (event time)", latency_p50: "latency p50 ms",
      latency_p95: "latency p95 ms", latency_p99: "latency p99 ms", requests: "HTTP requests", rate_5xx: "5xx rate",
      late: "late", future: "future",
    };
    $("cards").replaceChildren(...cards.map(([key, value, text]) =>
      el("div", { class: "card", id: "card-" + key }, names[key], el("b", { "data-value": value === null || value === undefined ? "" : value }, text))));
    $("overview-note").textContent = "first event " + isoTime(r.first_ts) + ", last event " + isoTime(r.last_ts)
      + " (UTC). Latency quantiles are KLL sketch estimates. Late lines are in every total, outside the rolling windows.";
  }
  const sumOf = (counts) => Object.values(counts || {}).reduce((a, b) => a + b, 0);

  function countsTable(counts, approximateBy) {
    const total = sumOf(counts);
    const rows = Object.entries(counts || {}).map(([k, v]) => ({ cells: [k, count(v), percent(total ? v / total : null)] }));
    const note = approximateBy === undefined ? null
      : el("p", { class: "note" }, "approximate: each count is a lower bound, the true one at most " + count(approximateBy) + " more");
    return [note, table(["", "count", "share"], rows)];
  }
  function renderBreakdowns(r) {
    const approximate = r.approximate || {};
    const http = r.http || {};
    const parts = [
      ["by_level", "By level", r.by_level], ["by_service", "By service", r.by_service],
      ["by_class", "By HTTP status class", http.by_class], ["by_format", "By format", r.by_format],
      ["by_host", "By host", r.by_host],
    ];
    $("breakdowns").replaceChildren(...parts.map(([key, title, counts]) =>
      panel(key, title, ...countsTable(counts, approximate[key]))));
  }
  function renderDistinct(r) {
    const names = { ip: "client IPs", user_agent: "user agents", path: "paths", host: "hosts", service: "services",
                    unique_visitors: "unique visitors (IP, day, user agent; no 4xx)" };
    const rows = Object.entries(r.distinct || {}).map(([k, d]) => ({
      attrs: { "data-key": k }, cells: [names[k] || k, "≈" + count(d.estimate), count(d.lower) + "–" + count(d.upper)] }));
    $("distinct-panel").replaceChildren(el("h2", {}, "Distinct values"),
      el("p", { class: "note" }, "HLL sketch: ≈" + percent(r.distinct_rel_err) + " relative standard error; the range is two standard deviations."),
      table(["", "≈count", "range"], rows, { id: "distinct" }));
  }
  const TOP_TITLES = { ip: "Client IPs", path: "Paths", service: "Services", host: "Hosts", status: "Status codes",
                       user_agent: "User agents", error: "Error templates", suspicious_ip: "Suspicious IPs (4xx/5xx answers)" };
  function renderTops(tops) {
    const panels = [];
    for (const [field, rows] of Object.entries(tops)) {
      if (!rows || !rows.length) continue;
      let t;
      if (field === "suspicious_ip") {
        t = table(["IP", "error responses", "requests", "share"], rows.map((row) =>
          ({ cells: [row.value, rowCount(row), rowCount(row, "requests"), percent(row.share)] })));
      } else if (field === "error") {
        t = table(["template", "count", "share"], rows.map((row) => ({ cells: [row.value, rowCount(row), rowShare(row)] })));
      } else {
        t = table([field, "count", "share"], rows.map((row) => ({ cells: [row.value, rowCount(row), rowShare(row)] })));
      }
      const approximate = rows.some((row) => row.approximate)
        ? el("p", { class: "note" }, "a–b: over the exact-count budget, from a sketch: the true count lies in a–b") : null;
      panels.push(panel("top-" + field, TOP_TITLES[field] || field, approximate, t));
    }
    $("tops").replaceChildren(...panels);
  }

  const SKIP = new Set(["type", "ts", "detector", "key", "timestamps", "lines", "top_templates"]);
  function eventFigures(e) {
    const out = [];
    for (const [k, v] of Object.entries(e)) {
      if (SKIP.has(k)) continue;
      let text = v;
      if (k === "started") text = isoTime(v);
      else if (k === "share" || (e.metric === "error_rate" && ["value", "mean", "std"].includes(k))) text = percent(v);
      else if (typeof v === "number") text = Number.isInteger(v) ? count(v) : v.toFixed(2);
      else if (typeof v === "object") text = JSON.stringify(v);
      out.push(k + "=" + text);
    }
    for (const t of e.top_templates || []) out.push(count(t.count) + "x " + t.template);
    return out.join(" ");
  }
  function eventRow(e, fresh) {
    return el("tr", { "data-type": e.type, class: fresh ? "fresh" : null },
      el("td", {}, isoTime(e.ts)), el("td", {}, e.type), el("td", {}, e.detector || ""), el("td", {}, String(e.key)),
      el("td", {}, eventFigures(e)));
  }
  const MAX_FEED = 500;  // rows the live feed keeps; EVENTS has them all
  function renderEvents(events) {
    // newest first, as a feed reads
    $("events").tBodies[0].replaceChildren(...events.slice().reverse().slice(0, MAX_FEED).map((e) => eventRow(e, false)));
  }
  function addEvent(e) {
    const body = $("events").tBodies[0];
    body.prepend(eventRow(e, true));
    while (body.rows.length > MAX_FEED) body.deleteRow(-1);
  }

  // -- charts (uPlot) ---------------------------------------------------------------------------
  const charts = {};
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  function chartData(history) {
    const s = history.series || {};
    const xs = [...new Set(Object.values(s).flatMap((points) => points.map((p) => p[0])))].sort((a, b) => a - b);
    const column = (name, scale) => {
      const at = new Map((s[name] || []).map((p) => [p[0], p[1]]));
      return xs.map((x) => (at.has(x) ? at.get(x) * scale : null));
    };
    const step = history.step || 60;
    return {
      lines: [xs, column("lines", 1 / step), column("errors", 1 / step)],
      error_rate: [xs, column("error_rate", 100)],
      latency: [xs, column("latency_p50", 1), column("latency_p95", 1), column("latency_p99", 1)],
    };
  }
  const CHARTS = {
    lines: ["lines/s (average over each step)", [["lines/s", "#4a7fb5"], ["errors/s", "#c0392b"]]],
    error_rate: ["error rate %", [["error rate %", "#c0392b"]]],
    latency: ["latency ms (per step: the KLL quantile; over an hour or a day, its largest minute's, an upper bound)",
              [["p50", "#27ae60"], ["p95", "#e67e22"], ["p99", "#8e44ad"]]],
  };
  let span = null;
  function xRange(lo, hi) {
    if (span !== null) return span;
    if (lo === null || hi === null) return [0, 1];
    return [lo - 60, hi + 60];
  }
  function renderCharts(history) {
    const data = chartData(history);
    const xs = data.lines[0];
    span = history.since !== undefined ? [history.since, history.until]
      : xs.length ? [xs[0] - history.step / 2, xs[xs.length - 1] + history.step * 1.5] : null;
    for (const [name, [title, series]] of Object.entries(CHARTS)) {
      const node = $("chart-" + name);
      node.setAttribute("data-points", String(data[name][0].length));
      if (charts[name]) { charts[name].setData(data[name]); continue; }
      charts[name] = new uPlot({
        title: title, width: Math.max(300, node.clientWidth - 2), height: 180, tzDate: utc,
        series: [{}, ...series.map(([label, stroke]) => ({ label: label, stroke: stroke, width: 1.5, spanGaps: false,
                                                           points: { size: 4 } }))],
        // the span asked for (the last hour), or the data's own with a step either side
        scales: { x: { time: true, range: (u, lo, hi) => xRange(lo, hi) }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
        axes: [{}, { size: 60 }],
      }, data[name], node);
    }
  }
  window.addEventListener("resize", () => {
    for (const [name, chart] of Object.entries(charts)) chart.setSize({ width: Math.max(300, $("chart-" + name).clientWidth - 2), height: 180 });
  });

  // -- the report's own panels: per hour and per day, GoAccess's web panels ---------------------
  function trendTable(id, title, history, format) {
    const s = history.series || {};
    const xs = [...new Set((s.lines || []).map((p) => p[0]))];
    const at = (name) => new Map((s[name] || []).map((p) => [p[0], p[1]]));
    const cols = ["lines", "errors", "error_rate", "status_5xx", "latency_p50", "latency_p95", "latency_p99", "distinct_ip"].map(at);
    const rows = xs.map((x) => ({ cells: [format(x), count(cols[0].get(x)), count(cols[1].get(x)), percent(cols[2].get(x)),
      count(cols[3].get(x)), millis(cols[4].get(x)), millis(cols[5].get(x)), millis(cols[6].get(x)), "≥" + count(cols[7].get(x))] }));
    return panel(id, title, el("div", { class: "scroll" },
      table(["start (UTC)", "lines", "errors", "error rate", "5xx", "≤p50 ms", "≤p95 ms", "≤p99 ms", "distinct IPs"], rows)));
  }
  function renderTrends(trends, late) {
    $("trends").replaceChildren(el("h2", {}, "Per day and per hour"),
      el("p", { class: "note" }, "Lines counted in the rolling windows, as the daemon's history keeps them: the "
        + count(late) + " late lines are in the totals only. Latency quantiles over an hour or a day are the largest"
        + " minute's (≤, an upper bound); distinct IPs the largest minute's (≥, a lower bound)."),
      trendTable("per_day", "Per day", trends.day, (x) => isoTime(x).slice(0, 10)),
      trendTable("per_hour", "Per hour", trends.hour, (x) => isoTime(x).slice(0, 13) + "h"));
  }
  const KEY_NAMES = { days: "date", hours: "hour", requests: "URL", static: "URL", not_found: "URL", hosts: "IP",
                      os: "OS family", browsers: "browser family", referrers: "referrer", referring_sites: "site",
                      status: "status", endpoints: "endpoint" };
  function webRows(p, total, withBar) {
    const most = Math.max(1, ...p.rows.map((r) => r.hits));
    const rows = p.rows.map((r) => ({ cells: [String(r.key), ...(withBar ? [el("span", { style: "width:" + (100 * r.hits / most).toFixed(1) + "%" })] : []),
      count(r.hits), percent(total ? r.hits / total : null), count(r.visitors), size(r.bytes)] }));
    if (p.other) {
      rows.push({ attrs: { class: "other" }, cells: ["other (≈" + count(p.other.keys) + " keys)", ...(withBar ? [""] : []),
        count(p.other.hits), percent(total ? p.other.hits / total : null), count(p.other.visitors), size(p.other.bytes)] });
    }
    return rows;
  }
  function renderWeb(web) {
    const total = web.requests;
    const out = [el("h2", {}, "Web panels (access logs)"),
      el("p", { class: "note" }, "≈ marks a count from an HLL sketch (lg_k=" + web.visitors_lg_k + ", relative error ≈"
        + percent(web.visitors_rel_err) + "). A visitor is a distinct IP, day and user agent"
        + (web.visitors_4xx ? "" : "; 4xx answers are left out, as GoAccess does") + ". Each panel keeps its "
        + count(web.max_keys) + " heaviest keys; the rest are one “other” row."),
      el("div", { class: "cards" }, ...[["requests", count(total)], ["unique visitors", "≈" + count(web.visitors)],
        ["bandwidth", size(web.bytes)], ["not found", count(web.panels.not_found.hits)]].map(([k, v]) =>
        el("div", { class: "card" }, k, el("b", {}, v))))];
    for (const name of ["days", "hours", "requests", "static", "not_found", "hosts", "os", "browsers", "referrers", "referring_sites"]) {
      const p = web.panels[name];
      if (!p || !p.rows.length) continue;
      const bars = name === "days" || name === "hours";
      const t = table([KEY_NAMES[name], ...(bars ? [""] : []), "hits", "share", "≈visitors", "bandwidth"], webRows(p, total, bars));
      if (bars) for (const cell of t.querySelectorAll("tbody td:nth-child(2)")) cell.className = "barcell";
      out.push(panel(name, p.title + " (" + count(p.keys) + " keys)", t));
    }
    if (web.status_classes && web.status_classes.length) {
      const rows = [];
      for (const g of web.status_classes) {
        rows.push({ cells: [g.class, count(g.hits), percent(g.hits / total), count(g.visitors), size(g.bytes)] });
        for (const c of g.codes) rows.push({ attrs: { class: "sub" }, cells: [c.key, count(c.hits), percent(c.hits / total), count(c.visitors), size(c.bytes)] });
      }
      out.push(panel("status", web.panels.status.title, table(["status", "hits", "share", "≈visitors", "bandwidth"], rows)));
    }
    const ep = web.panels.endpoints;
    if (ep && ep.rows.length) {
      out.push(panel("endpoints", ep.title, table(["endpoint", "hits", "p50", "p95", "p99", "max"],
        ep.rows.map((r) => ({ cells: [r.key, count(r.hits), millis(r.p50), millis(r.p95), millis(r.p99), millis(r.max)] })))));
    }
    $("web").replaceChildren(...out);
  }

  // -- the report: everything from the embedded data --------------------------------------------
  const embedded = $("logtally-data");
  const LIVE = embedded === null;
  if (!LIVE) {
    const data = JSON.parse(embedded.textContent);
    setStatus("report of " + data.paths.join(", ") + ", generated " + isoTime(data.generated));
    renderCards(data.report, data.report.lines_per_s);
    renderBreakdowns(data.report);
    renderDistinct(data.report);
    renderTops(data.top);
    $("charts-title").textContent = "Per hour";
    renderCharts(data.trends.hour);
    renderTrends(data.trends, data.report.late);
    if (data.web) renderWeb(data.web);
    if (data.events) renderEvents(data.events);
    else $("events-note").textContent = "analyze --events lists the anomalies the detectors find in the files.";
    return;
  }

  // -- live: the JSON API, then its event stream ------------------------------------------------
  // A token given as `#token=...` (a fragment never reaches a server or its logs) is kept for this
  // tab and sent as `Authorization: Bearer`; EventSource cannot send headers, so the stream is
  // read with fetch.
  const TOKEN_KEY = "logtally-token";
  function tokenFromHash() {
    const given = new URLSearchParams(location.hash.slice(1)).get("token");
    if (!given) return false;
    sessionStorage.setItem(TOKEN_KEY, given);
    history.replaceState(null, "", location.pathname + location.search);
    return true;
  }
  tokenFromHash();
  window.addEventListener("hashchange", () => { if (tokenFromHash()) { $("auth").hidden = true; start(); } });
  const headers = () => (sessionStorage.getItem(TOKEN_KEY) ? { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) } : {});
  class NeedToken extends Error {}
  async function getJSON(path) {
    const response = await fetch(path, { headers: headers(), cache: "no-store" });
    if (response.status === 401) throw new NeedToken();
    const body = await response.json();
    return { ok: response.ok, body: body };
  }
  function askToken() {
    setStatus("this daemon needs its bearer token", true);
    $("auth").hidden = false;
  }
  $("auth").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("auth-token").value.trim());
    $("auth").hidden = true;
    start();
  });

  const TOP_FIELDS = ["ip", "path", "service", "status", "error", "suspicious_ip"];
  const live = { last: null, clusterAt: 0, historyAt: 0, historyMinute: null, topsAt: 0, topsReceived: null };
  async function refreshTops(received) {
    live.topsAt = Date.now();
    live.topsReceived = received;
    const answers = await Promise.all(TOP_FIELDS.map((f) => getJSON("api/v1/top/" + f + "?n=10&window=all")));
    const tops = {};
    TOP_FIELDS.forEach((f, i) => { tops[f] = answers[i].ok ? answers[i].body.top : []; });
    renderTops(tops);
  }
  async function refreshHistory(anchor) {
    live.historyAt = Date.now();
    live.historyMinute = Math.floor(anchor / 60);
    const answer = await getJSON("api/v1/history?series=lines,errors,error_rate,latency_p50,latency_p95,latency_p99&step=60&since=-1h");
    if (!answer.ok) {
      $("charts-note").textContent = answer.body.error;
      return;
    }
    $("charts-note").textContent = "Closed minutes of event time from the history store, written every [history] interval_s.";
    renderCharts(answer.body);
  }
  // CLUSTER, when this daemon is a node of a fleet (its STATS then has a `cluster` object): asked
  // every few seconds; without `[cluster] nats` the panel stays hidden and nothing is asked.
  async function refreshCluster() {
    live.clusterAt = Date.now();
    const answer = await getJSON("api/v1/cluster");
    $("cluster").hidden = !answer.ok;
    if (!answer.ok) return;
    const c = answer.body;
    $("cluster-note").textContent = "watermark " + (c.watermark === null ? "-" : new Date(c.watermark * 1000).toISOString().slice(0, 19) + " UTC") +
      " · a node silent for " + c.down_after_s + " s is down";
    const rows = c.nodes.map((n) => ({ cells: [n.node, n.up ? "up" : "down", n.last_second === null ? "-" : new Date(n.last_second * 1000).toISOString().slice(11, 19),
      n.lag_s === null ? "-" : n.lag_s + " s", n.silent_s + " s", count(n.lines), String(n.restarts)] }));
    $("cluster-table").replaceChildren(table(["node", "state", "last second (UTC)", "lag", "silent", "lines", "restarts"], rows, { id: "cluster-nodes" }));
  }
  function onStats(r) {
    const now = performance.now();
    let rate = null;
    if (live.last !== null && now > live.last.at) rate = (r.received - live.last.received) / ((now - live.last.at) / 1000);
    live.last = { at: now, received: r.received };
    renderCards(r, rate);
    renderBreakdowns(r);
    renderDistinct(r);
    setStatus("live · " + new Date().toISOString().slice(11, 19) + " UTC");
    // The tables and the history are questions of their own: asked again at most every few seconds.
    const since = Date.now() - live.topsAt;
    if ((r.received !== live.topsReceived && since > 2000) || since > 15000) refreshTops(r.received).catch(onFailure);
    $("cluster").hidden = !r.cluster;
    if (r.cluster && Date.now() - live.clusterAt > 5000) refreshCluster().catch(onFailure);
    if (Math.floor(r.anchor / 60) !== live.historyMinute || Date.now() - live.historyAt > 30000) refreshHistory(r.anchor).catch(onFailure);
  }
  function onMessage(m) {
    if (m.subscribed || m.type === "lagged" || m.type === "record") return;
    if (m.type === "stats") onStats(m);
    else addEvent(m);
  }
  async function stream() {
    const response = await fetch("api/v1/stream?topics=stats,anomalies&interval_s=1", { headers: headers(), cache: "no-store" });
    if (response.status === 401) throw new NeedToken();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let end;
      while ((end = pending.indexOf("\n\n")) >= 0) {  // WHATWG HTML §9.2.5: an event ends at a blank line
        const event = pending.slice(0, end);
        pending = pending.slice(end + 2);
        for (const line of event.split("\n")) if (line.startsWith("data: ")) onMessage(JSON.parse(line.slice(6)));
      }
    }
    throw new Error("the stream ended");
  }
  function onFailure(error) {
    if (error instanceof NeedToken) { askToken(); return true; }
    setStatus("reconnecting: " + error.message, true);
    return false;
  }
  let running = false;
  async function start() {
    if (running) return;
    running = true;
    try {
      for (;;) {
        try {
          const stats = await getJSON("api/v1/stats");
          onStats(stats.body);
          renderEvents((await getJSON("api/v1/events?n=" + MAX_FEED)).body.events);
          await stream();
        } catch (error) {
          if (onFailure(error)) return;
        }
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    } finally {
      running = false;
    }
  }
  start();
})();
