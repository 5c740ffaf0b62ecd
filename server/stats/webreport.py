"""Web analytics of access logs, GoAccess's panels: a mergeable `WebPartial` per batch and its summary.

Pool workers fold a batch's HTTP records into a `WebPartial` (only when `analyze` asks for a web
report); the main process merges them in batch order and `summarise` turns the result into plain
values for the text, HTML and JSON reports.
"""
from __future__ import annotations

import collections
from typing import Annotated, Any, Iterable, Sequence

import msgspec

from logtallyd.records import Record
from logtallyd.stats.sketches import ds, hll_type
from logtallyd import native

# The per-line tally, compiled when built (logtallyd.native); the two readings are public here.
_tally = native.load("logtallyd.stats.webtally")
Scratch, tally = _tally.Scratch, _tally.tally
browser_and_os, referring_site = _tally.browser_and_os, _tally.referring_site
preload_ua_parser = _tally.preload_ua_parser

__all__ = [
    "PANELS", "STATUS_CLASSES", "WebConfig", "WebPartial", "browser_and_os", "collect",
    "referring_site", "summarise", "visitor_rel_err",
]

# GoAccess 1.7's default `static-file` extensions (goaccess.conf), matched at the end of the path
# without its query string, case-insensitively.
STATIC_EXTENSIONS = (
    ".css", ".js", ".jpg", ".png", ".gif", ".ico", ".jpeg", ".pdf", ".csv", ".mpeg", ".mpg", ".swf",
    ".woff", ".woff2", ".xls", ".xlsx", ".doc", ".docx", ".ppt", ".pptx", ".txt", ".zip", ".ogg",
    ".mp3", ".mp4", ".exe", ".iso", ".gz", ".rar", ".svg", ".bmp", ".tar", ".tgz", ".tiff", ".tif",
    ".ttf", ".flv", ".dmg", ".xz", ".zst",
)


class WebConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the web report tracks; every per-key table is bounded by `max_keys` (days: `max_days`)."""

    # Keys kept per panel; lighter keys beyond it are folded into one "other" row that says how
    # many keys it holds, so a file with millions of client IPs stays within bounded memory.
    max_keys: Annotated[int, msgspec.Meta(ge=24, le=100_000)] = 1000
    max_days: Annotated[int, msgspec.Meta(ge=1, le=36_600)] = 3660
    # HLL sketch size of every visitor count: relative error 1.04 / sqrt(2**lg_k), 1.6% at 12.
    lg_k: Annotated[int, msgspec.Meta(ge=4, le=16)] = 12
    kll_k: Annotated[int, msgspec.Meta(ge=8, le=65535)] = 200  # latency quantiles per endpoint
    # GoAccess leaves 4xx responses out of unique visitors unless `--4xx-to-unique-count`.
    visitors_4xx: bool = False
    static_extensions: tuple[str, ...] = STATIC_EXTENSIONS


# Panel name -> title, in the order the reports show them (GoAccess's order, then ours).
PANELS: dict[str, str] = {
    "days": "Unique visitors per day",
    "hours": "Time distribution (hour of day, UTC)",
    "requests": "Requested files (URLs)",
    "static": "Static requests",
    "not_found": "Not found URLs (404s)",
    "hosts": "Visitor hosts and IPs",
    "os": "Operating systems",
    "browsers": "Browsers",
    "referrers": "Referrer URLs",
    "referring_sites": "Referring sites",
    "status": "HTTP status codes",
    "endpoints": "Latency per endpoint (ms)",
}
if tuple(PANELS) != _tally.PANELS:
    raise ImportError("webtally.PANELS must list webreport.PANELS in order")
_BY_KEY = ("days", "hours")  # shown in key order (time), the others heaviest first

# RFC 9110 §15: the first digit of a status code defines its class.
STATUS_CLASSES = {
    "1": "1xx Informational", "2": "2xx Success", "3": "3xx Redirection",
    "4": "4xx Client errors", "5": "5xx Server errors",
}

def visitor_rel_err(lg_k: int) -> float:
    """Relative standard error of a merged visitor count (one standard deviation)."""
    return abs(ds.hll_sketch.get_rel_err(True, True, lg_k, 1))


# -- the user agent and referrer readings ------------------------------------------------------


# `browser_and_os` and `referring_site` live with the per-line tally, which calls them.


# -- the partial -------------------------------------------------------------------------------


class _Row:
    """One key of a panel: hits, bytes sent, distinct visitors, latencies (endpoints only)."""

    __slots__ = ("hits", "bytes", "visitors", "latency")

    def __init__(self, hits: int = 0, nbytes: int = 0, visitors: Any = None, latency: Any = None) -> None:
        self.hits = hits
        self.bytes = nbytes
        # ds.hll_union, or None; a batch's own rows (from `collect`, or decoded to be merged)
        # hold its ds.hll_sketch instead
        self.visitors = visitors
        self.latency = latency  # ds.kll_floats_sketch or None

    def absorb(self, other: _Row, lg_k: int) -> None:
        self.add(other.hits, other.bytes, None if other.visitors is None else _sketch_of(other.visitors),
                 other.latency, lg_k)

    def add(self, hits: int, nbytes: int, visitors: Any, latency: Any, lg_k: int) -> None:
        """Add counts, a visitor sketch (or None) and a latency sketch (or None) to this row."""
        self.hits += hits
        self.bytes += nbytes
        if visitors is not None:
            self.visitors = _as_union(self.visitors, lg_k)
            self.visitors.update(visitors)
        if latency is not None:
            if self.latency is None:
                self.latency = ds.kll_floats_sketch(latency.k)
            self.latency.merge(latency)


class _RowWire(msgspec.Struct, array_like=True):
    key: str
    hits: int
    sent: int  # response bytes
    visitors: bytes = b""  # HLL sketch, compact
    latency: bytes = b""  # KLL sketch


class _PanelWire(msgspec.Struct, array_like=True):
    rows: list[_RowWire]
    other: _RowWire | None = None
    other_keys: bytes = b""  # HLL sketch of the keys folded into `other`


class _Wire(msgspec.Struct, array_like=True):
    requests: int
    sent: int
    undated: int
    visitors: bytes
    panels: dict[str, _PanelWire]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Wire)


class _Panel:
    """Rows by key, at most `limit`; lighter keys overflow into `other`, counted by a sketch."""

    __slots__ = ("limit", "rows", "other", "other_keys")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows: dict[str, _Row] = {}
        self.other: _Row | None = None
        self.other_keys: Any = None  # ds.hll_union of the overflowed keys

    def merge(self, rows: dict[str, _Row], other: _Row | None, other_keys: Any, lg_k: int) -> None:
        mine = self.rows
        new: dict[str, _Row] = {}
        for key, row in rows.items():
            if key in mine:
                mine[key].absorb(row, lg_k)
            else:
                if row.visitors is not None:
                    row.visitors = _as_union(row.visitors, lg_k)  # a kept row holds a union
                new[key] = row
        if other is not None:
            self._overflow_row(other, lg_k)
        if other_keys is not None:
            self._overflow_keys(_sketch_of(other_keys), lg_k)
        excess = len(mine) + len(new) - self.limit
        if excess > 0:
            # Keep the heaviest keys (ties: the smaller key stays), whichever side they came
            # from, so the outcome does not depend on which partial is merged into which.
            ranked = [(-row.hits, key) for key, row in mine.items()]
            ranked += [(-row.hits, key) for key, row in new.items()]
            ranked.sort()
            names = ds.hll_sketch(lg_k, hll_type())
            for _, key in ranked[self.limit:]:
                row = mine.pop(key, None) or new.pop(key)
                self._overflow_row(row, lg_k)
                names.update(key)
            self._overflow_keys(names, lg_k)
        mine.update(new)

    def merge_wire(self, pw: _PanelWire, lg_k: int) -> None:
        """`merge` of a decoded panel: a row whose key is kept here is added in place, as
        `_Row.absorb` would add it, without a row built for it first (most rows of a batch)."""
        mine = self.rows
        rows: dict[str, _Row] = {}
        for rw in pw.rows:
            row = mine.get(rw.key)
            if row is None:
                rows[rw.key] = _row_from_wire(rw, lg_k, union=False)
            else:
                row.add(rw.hits, rw.sent, ds.hll_sketch.deserialize(rw.visitors) if rw.visitors else None,
                        ds.kll_floats_sketch.deserialize(rw.latency) if rw.latency else None, lg_k)
        self.merge(
            rows, None if pw.other is None else _row_from_wire(pw.other, lg_k, union=False),
            ds.hll_sketch.deserialize(pw.other_keys) if pw.other_keys else None, lg_k,
        )

    def _overflow_row(self, row: _Row, lg_k: int) -> None:
        if self.other is None:
            self.other = _Row()
        self.other.absorb(row, lg_k)

    def _overflow_keys(self, sketch: Any, lg_k: int) -> None:
        if self.other_keys is None:
            self.other_keys = ds.hll_union(lg_k)
        self.other_keys.update(sketch)


class WebPartial:
    """The web panels of some batches. `merge` is commutative, and associative while no panel
    overflows its bound (beyond it the heaviest keys are kept, as top-K sketches do); totals,
    bytes and visitor sketches merge exactly in any order."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.requests = 0
        self.bytes = 0
        self.undated = 0  # requests without a timestamp: in every panel but days and hours
        self.visitors = ds.hll_union(config.lg_k)
        self.panels = {
            name: _Panel(config.max_days if name == "days" else config.max_keys) for name in PANELS
        }

    def merge(self, other: WebPartial) -> None:
        """Add `other` into this partial; `other` is consumed (its rows move over)."""
        lg_k = self.config.lg_k
        self.requests += other.requests
        self.bytes += other.bytes
        self.undated += other.undated
        self.visitors.update(other.visitors.get_result(hll_type()))
        for name, panel in self.panels.items():
            theirs = other.panels[name]
            panel.merge(theirs.rows, theirs.other, theirs.other_keys, lg_k)

    def merge_bytes(self, data: bytes) -> None:
        """`merge(WebPartial.from_bytes(data, config))`, without building the other partial:
        its rows' visitor sketches go into this partial's unions as decoded, where a union of
        each would be built only to be read once (the unions come out the same, byte for byte)."""
        wire = _decoder.decode(data)
        lg_k = self.config.lg_k
        self.requests += wire.requests
        self.bytes += wire.sent
        self.undated += wire.undated
        self.visitors.update(ds.hll_sketch.deserialize(wire.visitors))
        for name, pw in wire.panels.items():
            self.panels[name].merge_wire(pw, lg_k)

    def to_bytes(self) -> bytes:
        panels = {}
        for name, panel in self.panels.items():
            if not panel.rows and panel.other is None:
                continue
            panels[name] = _PanelWire(
                rows=[_row_wire(key, row) for key, row in panel.rows.items()],
                other=None if panel.other is None else _row_wire("", panel.other),
                other_keys=b"" if panel.other_keys is None else _hll_bytes(panel.other_keys),
            )
        return _encoder.encode(_Wire(self.requests, self.bytes, self.undated, _hll_bytes(self.visitors), panels))

    @classmethod
    def from_bytes(cls, data: bytes, config: WebConfig) -> WebPartial:
        wire = _decoder.decode(data)
        out = cls(config)
        out.requests, out.bytes, out.undated = wire.requests, wire.sent, wire.undated
        out.visitors.update(ds.hll_sketch.deserialize(wire.visitors))
        lg_k = config.lg_k
        for name, pw in wire.panels.items():
            panel = out.panels[name]
            panel.rows = {rw.key: _row_from_wire(rw, lg_k) for rw in pw.rows}
            panel.other = None if pw.other is None else _row_from_wire(pw.other, lg_k)
            if pw.other_keys:
                panel.other_keys = ds.hll_union(lg_k)
                panel.other_keys.update(ds.hll_sketch.deserialize(pw.other_keys))
        return out


def _hll_bytes(visitors: Any) -> bytes:
    """A union's result, or a batch's sketch, serialised (compact)."""
    return _sketch_of(visitors).serialize_compact()


def _row_wire(key: str, row: _Row) -> _RowWire:
    return _RowWire(
        key, row.hits, row.bytes,
        b"" if row.visitors is None else _hll_bytes(row.visitors),
        b"" if row.latency is None else row.latency.serialize(),
    )


def _row_from_wire(rw: _RowWire, lg_k: int, union: bool = True) -> _Row:
    """A decoded row; its visitors a union (`union`), or the sketch as sent, to be merged."""
    visitors = None
    if rw.visitors:
        visitors = ds.hll_sketch.deserialize(rw.visitors)
        if union:
            visitors = _union_of(visitors, lg_k)
    latency = ds.kll_floats_sketch.deserialize(rw.latency) if rw.latency else None
    return _Row(rw.hits, rw.sent, visitors, latency)


def _union_of(sketch: Any, lg_k: int) -> Any:
    union = ds.hll_union(lg_k)
    union.update(sketch)
    return union


def _as_union(visitors: Any, lg_k: int) -> Any:
    """A row's visitors as a union to merge into: a new one, or one around a batch's sketch."""
    if visitors is None:
        return ds.hll_union(lg_k)
    return visitors if isinstance(visitors, ds.hll_union) else _union_of(visitors, lg_k)


def _sketch_of(visitors: Any) -> Any:
    """What a union takes in: a union's result, or a decoded sketch as it is."""
    return visitors.get_result(hll_type()) if isinstance(visitors, ds.hll_union) else visitors


# -- collecting a batch ------------------------------------------------------------------------


def collect(records: Iterable[Record], config: WebConfig) -> WebPartial:
    """The web panels of one batch's parsed records (those with an HTTP request)."""
    out = WebPartial(config)
    static = tuple(ext.lower() for ext in config.static_extensions)
    counted = tally(records, static, config.visitors_4xx)
    out.requests, out.bytes, out.undated = counted.requests, counted.sent, counted.undated
    lg_k, kll_k = config.lg_k, config.kll_k
    seal = _Sealer(lg_k, kll_k)
    if counted.everyone:
        out.visitors.update(seal.sketch(counted.everyone))
    for name, rows in counted.rows.items():
        panel = out.panels[name]
        if len(rows) > panel.limit:
            # Fold the lightest keys before any sketch is built for them (as `_Panel.merge`
            # would fold them after): a batch of unique client IPs costs counters, not sketches.
            ranked = sorted((-s.hits, key) for key, s in rows.items())
            rest = Scratch()
            names: dict[str, None] = {}
            for _, key in ranked[panel.limit:]:
                s = rows.pop(key)
                rest.hits += s.hits
                rest.bytes += s.bytes
                rest.visitors.update(s.visitors)
                rest.latencies += s.latencies
                names[key] = None
            panel._overflow_row(seal.row(rest), lg_k)
            panel._overflow_keys(_sketch(names, lg_k), lg_k)
        # The panel held nothing and the batch holds at most `limit` keys now: its rows are these
        # (each with its batch's sketch, not a union of it: the union is built where the row is
        # merged, and comes out the same).
        panel.rows = {key: seal.row(s) for key, s in rows.items()}
    return out


class _Sealer:
    """Turns a batch's counters into rows, one visitor sketch per distinct visitor sequence.

    Keys of different panels often have the same visitors in the same order: the batch's one
    day and its hour hold everyone, so does a referrer that every line gives, and a browser its
    OS. Their sketches would be fed the same updates (about 70 ns each, the web report's largest
    cost): the sequence is looked up first (a tuple of strings whose hashes are cached) and an
    equal one reuses the sketch built for it. Same updates, same order: the same sketch."""

    def __init__(self, lg_k: int, kll_k: int) -> None:
        self.lg_k, self.kll_k = lg_k, kll_k
        self.sketches: dict[tuple[str, ...], Any] = {}

    def sketch(self, visitors: dict[str, None]) -> Any:
        seq = tuple(visitors)
        sk = self.sketches.get(seq)
        if sk is None:
            sk = self.sketches[seq] = _sketch(seq, self.lg_k)
        return sk

    def row(self, s: Scratch) -> _Row:
        visitors = self.sketch(s.visitors) if s.visitors else None
        latency = None
        if s.latencies:
            latency = ds.kll_floats_sketch(self.kll_k)
            latency.update(_float32s(s.latencies))
        return _Row(s.hits, s.bytes, visitors, latency)


def _sketch(keys: Iterable[str], lg_k: int) -> Any:
    """An HLL sketch fed `keys` in their order."""
    sk = ds.hll_sketch(lg_k, hll_type())
    _drain(map(sk.update, keys))  # one C-level loop over the keys
    return sk


_drain = collections.deque(maxlen=0).extend


# -- the summary -------------------------------------------------------------------------------


def _estimate(visitors: Any) -> int:
    """A union's estimate; a batch's sketch (a partial straight from `collect`) is read as the
    union of it that a merge would make, so the figure does not depend on where it is read."""
    if visitors is None:
        return 0
    if not isinstance(visitors, ds.hll_union):
        visitors = _union_of(visitors, visitors.lg_config_k)
    return round(visitors.get_estimate())


def _row_values(key: str, row: _Row, with_latency: bool) -> dict[str, Any]:
    values: dict[str, Any] = {"key": key, "hits": row.hits, "visitors": _estimate(row.visitors), "bytes": row.bytes}
    if with_latency:
        lat = row.latency
        for name, rank in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            values[name] = None if lat is None else float(lat.get_quantile(rank, True))
        values["max"] = None if lat is None else float(lat.get_max_value())
    return values


def summarise(web: WebPartial, top: int | None = None) -> dict[str, Any]:
    """Plain values of every panel (JSON-ready): `top` heaviest rows per panel (days and hours:
    all, in time order), each panel's key count and its overflow row."""
    cfg = web.config
    panels: dict[str, Any] = {}
    for name, panel in web.panels.items():
        with_latency = name == "endpoints"
        if name in _BY_KEY:
            items = sorted(panel.rows.items())
        else:
            items = sorted(panel.rows.items(), key=lambda kv: (-kv[1].hits, kv[0]))
        shown = items if top is None or name in _BY_KEY else items[:top]
        other = None
        if panel.other is not None:
            other = _row_values("", panel.other, with_latency)
            other["keys"] = _estimate(panel.other_keys)
            del other["key"]
        panels[name] = {
            "title": PANELS[name],
            "keys": len(panel.rows) + (0 if other is None else other["keys"]),
            "hits": sum(row.hits for row in panel.rows.values()) + (0 if panel.other is None else panel.other.hits),
            "rows": [_row_values(key, row, with_latency) for key, row in shown],
            "other": other,
        }
    return {
        "requests": web.requests,
        "bytes": web.bytes,
        "undated": web.undated,
        "visitors": _estimate(web.visitors),
        "visitors_rel_err": visitor_rel_err(cfg.lg_k),
        "visitors_lg_k": cfg.lg_k,
        "visitors_4xx": cfg.visitors_4xx,
        "max_keys": cfg.max_keys,
        "panels": panels,
        "status_classes": _status_classes(web.panels["status"], cfg.lg_k),
    }


def _status_classes(panel: _Panel, lg_k: int) -> list[dict[str, Any]]:
    """The status codes grouped by class, each class with its codes, heaviest first."""
    groups: dict[str, list[tuple[str, _Row]]] = {}
    for key, row in panel.rows.items():
        groups.setdefault(key[:1] if key[:1] in STATUS_CLASSES else "-", []).append((key, row))
    out = []
    for digit in sorted(groups):
        rows = sorted(groups[digit], key=lambda kv: (-kv[1].hits, kv[0]))
        total = _Row()
        for _, row in rows:
            total.absorb(row, lg_k)
        out.append({
            "class": STATUS_CLASSES.get(digit, "Other (no valid status)"),
            **{k: v for k, v in _row_values("", total, False).items() if k != "key"},
            "codes": [_row_values(key, row, False) for key, row in rows],
        })
    return out


def merge_all(parts: Sequence[WebPartial], config: WebConfig) -> WebPartial:
    """One partial from many, merged left to right (tests and callers that hold a list)."""
    out = WebPartial(config)
    for part in parts:
        out.merge(part)
    return out


def _float32s(values: Sequence[float]) -> Any:
    """One array for KLL's batch update (numpy is a datasketches dependency, loaded with it)."""
    import numpy as np

    return np.asarray(values, dtype=np.float32)
