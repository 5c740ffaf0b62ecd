"""config.toml and the config Structs: every numeric key has its range on its field, sits exactly
at its bounds, is refused just outside them with an error naming the key, and is documented."""
from __future__ import annotations

import math
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Iterator

import msgspec
import msgspec.inspect as mi
import pytest

from logtallyd.daemon.config import Config, ConfigError, check_config, decode_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config.toml"

# The fields a `[[detect.patterns]]` / `[[alerts]]` item needs besides the one under test.
_PATTERN = {"name": "p", "steps": ["x"]}
_ALERT = {"name": "a", "kind": "webhook", "url": "http://127.0.0.1:1/"}


def _shipped_text() -> str:
    """config.toml with its commented-out `[[alerts]]` example uncommented (no routes by default,
    so the example documents the keys without changing the defaults)."""
    out, example = [], False
    for line in SHIPPED.read_text().splitlines():
        if line == "# [[alerts]]":
            example = True
        elif example and not line.startswith("# "):
            example = False
        out.append(line[2:] if example else line)
    return "\n".join(out) + "\n"


class Numeric(msgspec.Struct, frozen=True):
    key: str  # dotted, as in config.toml ("stats.windows.*" for a dict's values)
    kind: type  # int or float
    ge: float | None
    gt: float | None
    le: float | None
    lt: float | None
    default: Any

    def raw(self, value: object) -> dict[str, Any]:
        """The smallest config tree that sets this key to `value`."""
        parts = self.key.split(".")
        if parts[:2] == ["stats", "windows"]:
            return {"stats": {"windows": {"w": value}}}
        if parts[:2] == ["detect", "patterns[]"]:
            return {"detect": {"patterns": [{**_PATTERN, parts[2]: value}]}}
        if parts[0] == "alerts[]":
            return {"alerts": [{**_ALERT, parts[1]: value}]}
        tree: dict[str, Any] = {parts[-1]: value}
        for part in reversed(parts[:-1]):
            tree = {part: tree}
        return tree

    def path(self) -> str:
        """Where msgspec says the value was."""
        if self.key.startswith("stats.windows."):
            return "$.stats.windows[...]"
        return "$." + self.key.replace("patterns[]", "patterns[0]").replace("alerts[]", "alerts[0]")


def _walk(info: mi.StructType, prefix: str = "") -> Iterator[Numeric]:
    for field in info.fields:
        default = field.default
        if default is msgspec.NODEFAULT and field.default_factory is not msgspec.NODEFAULT:
            default = field.default_factory()
        t = field.type
        key = f"{prefix}{field.name}"
        if isinstance(t, mi.UnionType):  # `X | None`: the X
            t = next(x for x in t.types if not isinstance(x, mi.NoneType))
        if isinstance(t, mi.StructType):
            yield from _walk(t, key + ".")
        elif isinstance(t, (mi.IntType, mi.FloatType)):
            yield Numeric(key, int if isinstance(t, mi.IntType) else float, t.ge, t.gt, t.le, t.lt, default)
        elif isinstance(t, mi.DictType) and isinstance(t.value_type, mi.StructType):
            yield from _walk(t.value_type, key + ".*.")
        elif isinstance(t, mi.DictType) and isinstance(t.value_type, (mi.IntType, mi.FloatType)):
            v = t.value_type
            yield Numeric(key + ".*", int if isinstance(v, mi.IntType) else float, v.ge, v.gt, v.le, v.lt,
                          next(iter(default.values())))
        elif isinstance(t, mi.ListType) and isinstance(t.item_type, mi.StructType):
            yield from _walk(t.item_type, key + "[].")


NUMERIC = list(_walk(mi.type_info(Config)))  # type: ignore[arg-type]


def test_the_walk_sees_every_section() -> None:
    sections = {n.key.split(".")[0] for n in NUMERIC}
    assert sections == {"daemon", "ingest", "pipeline", "control", "rejects", "stats", "detect", "primes",
                        "state", "archive", "history", "http", "cluster", "sources", "log", "alerts[]"}
    keys = {n.key for n in NUMERIC}
    assert {"stats.windows.*", "detect.patterns[].max_gap_s", "control.max_connections"} <= keys


@pytest.mark.parametrize("field", NUMERIC, ids=lambda n: n.key)
def test_every_numeric_key_has_a_lower_bound(field: Numeric) -> None:
    assert field.ge is not None or field.gt is not None


def _edges(field: Numeric) -> list[tuple[Any, Any]]:
    """(value at the bound, value just outside it) for each bound of the field."""
    out = []
    for at, closed, down in ((field.ge, True, True), (field.gt, False, True), (field.le, True, False),
                             (field.lt, False, False)):
        if at is None:
            continue
        step = -1 if down else 1
        if field.kind is int:
            inside, outside = (at, at + step) if closed else (at - step, at)
        else:
            at = float(at)
            nudged = math.nextafter(at, -math.inf if down else math.inf)
            inside, outside = (at, nudged) if closed else (math.nextafter(at, math.inf if down else -math.inf), at)
        out.append((inside, outside))
    return out


BOUNDS = [(field, inside, outside) for field in NUMERIC for inside, outside in _edges(field)]


@pytest.mark.parametrize("field", NUMERIC, ids=lambda n: n.key)
def test_the_default_decodes(field: Numeric) -> None:
    assert msgspec.convert(field.raw(field.default), Config) is not None


@pytest.mark.parametrize(("field", "inside", "outside"), BOUNDS,
                         ids=[f"{f.key}={o}" for f, _, o in BOUNDS])
def test_bounds_are_exact_and_errors_name_the_key(field: Numeric, inside: Any, outside: Any) -> None:
    msgspec.convert(field.raw(inside), Config)  # exactly at the bound: accepted by the field
    with pytest.raises(ConfigError) as caught:
        decode_config(field.raw(outside), "config.toml")
    message = str(caught.value)
    assert message.startswith("config.toml: Expected ")
    assert message.endswith(f" - at `{field.path()}`")


def _documented() -> dict[str, str]:
    """Dotted key -> its comment in config.toml (the comment on the key's own line)."""
    section = ""
    out: dict[str, str] = {}
    for line in _shipped_text().splitlines():
        if m := re.match(r"^\[\[?([\w.]+)\]\]?\s*(#.*)?$", line):
            section = m.group(1)
            if section in ("detect.patterns", "alerts"):
                section += "[]"
            out[section] = m.group(2) or ""
            continue
        if m := re.match(r"^(\w+)\s*=\s*[^#]*?(#.*)?$", line):
            out[f"{section}.{m.group(1)}"] = m.group(2) or ""
    return out


def _range_text(field: Numeric) -> str:
    def num(x: float | None) -> str:
        assert x is not None
        return str(int(x)) if float(x).is_integer() else str(x)

    lo = f"[{num(field.ge)}" if field.ge is not None else f"({num(field.gt)}"
    hi = f"{num(field.le)}]" if field.le is not None else (f"{num(field.lt)})" if field.lt is not None else "inf)")
    return f"range {lo}, {hi}"


@pytest.mark.parametrize("field", NUMERIC, ids=lambda n: n.key)
def test_config_toml_documents_each_range(field: Numeric) -> None:
    comments = _documented()
    where = "stats.windows" if field.key == "stats.windows.*" else field.key
    assert _range_text(field) in comments[where]


def _struct_keys(info: mi.StructType, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for field in info.fields:
        key = f"{prefix}{field.name}"
        t = field.type
        if isinstance(t, mi.StructType):
            keys |= _struct_keys(t, key + ".")
        elif isinstance(t, mi.ListType) and isinstance(t.item_type, mi.StructType):
            keys |= _struct_keys(t.item_type, key + "[].")
        elif key == "listeners":
            keys.add(key)  # per listener: the [parse] keys again, shown commented out
        else:
            keys.add(key)
    return keys


def _toml_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if key in ("stats.windows", "listeners"):
            keys.add(key)  # user-named entries, not fields
        elif isinstance(value, dict) and value:  # `header_env = {}`: a key whose value is a map
            keys |= _toml_keys(value, key + ".")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                keys |= _toml_keys(item, key + "[].")
        else:
            keys.add(key)
    return keys


def test_config_toml_keys_are_the_struct_fields() -> None:
    written = _toml_keys(tomllib.loads(_shipped_text()))
    known = _struct_keys(mi.type_info(Config))  # type: ignore[arg-type]
    # TOML has no null: a key whose default is None can only be shown as a comment.
    assert known - written == {"parse.force"}
    assert "# force = " in SHIPPED.read_text()
    assert written - known == set()


def test_shipped_config_is_the_defaults() -> None:
    raw = tomllib.loads(SHIPPED.read_text())
    assert decode_config(raw) == Config()
    assert check_config(Config()) is None
    example = decode_config(tomllib.loads(_shipped_text()))  # the commented-out route is sound
    assert [route.name for route in example.alerts] == ["ops"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ingest": {"tls": {"listen": "127.0.0.1:6514"}}}, "ingest.tls.listen needs ingest.tls.cert and ingest.tls.key"),
        ({"ingest": {"tcp": "nowhere"}}, "ingest.tcp: expected HOST:PORT, got 'nowhere'"),
        ({"http": {"listen": "127.0.0.1:70000"}}, "http.listen: expected HOST:PORT, got '127.0.0.1:70000'"),
        ({"control": {"default_interval_s": 0.01}},
         "control.default_interval_s must be within control.min_interval_s..control.max_interval_s"
         " (got 0.01 not in 0.05..3600.0)"),
        ({"control": {"min_interval_s": 10.0, "max_interval_s": 5.0, "default_interval_s": 7.0}},
         "control.default_interval_s must be within control.min_interval_s..control.max_interval_s"
         " (got 7.0 not in 10.0..5.0)"),
        ({"daemon": {"tick_interval_s": 0.5, "status_interval_s": 0.4}},
         "daemon.status_interval_s must be >= daemon.tick_interval_s (got 0.4 < 0.5)"),
        ({"detect": {"spike": {"overall_resolve_below": 101}}},
         "detect.spike.overall_resolve_below must be in 1..spike.overall_threshold (got 101)"),
    ],
)
def test_cross_key_checks_name_the_keys(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        decode_config(raw, "config.toml")
    assert str(caught.value) == "config.toml: " + message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"stats": {"windows": {}}}, "Expected `object` of length >= 1 - at `$.stats.windows`"),
        ({"stats": {"windows": {"all": 60}}}, "at `key` in `$.stats.windows`"),
        ({"stats": {"windows": {"5 m": 300}}}, "at `key` in `$.stats.windows`"),
        ({"parse": {"formats": ["xml"]}}, "at `$.parse.formats[0]`"),
        ({"parse": {"force": "csv"}}, "at `$.parse.force`"),
        ({"ingest": {"delimiter": "cr"}}, "at `$.ingest.delimiter`"),
        ({"listeners": {"udp": {"parse": {"force": "csv"}}}}, "at `$.listeners[...].parse.force`"),
    ],
)
def test_non_numeric_constraints_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        decode_config(raw, "config.toml")
    assert str(caught.value).endswith(message)


def test_loading_the_config_imports_neither_numpy_nor_numba() -> None:
    code = "import logtallyd.daemon.config, sys; print('numpy' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout == "False False\n"


def test_limit_keys_reach_their_components(start_server) -> None:
    server = start_server(
        '[http]\nlisten = "127.0.0.1:0"\nmax_head_bytes = 256\n'
        "[log]\nrejected_per_interval = 1\nrate_interval_s = 1.0\n"
        "[daemon]\ntick_interval_s = 0.05\nstatus_interval_s = 0.5\n"
    )
    with socket.create_connection(server.address("http"), timeout=30) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 250)  # 264 bytes, no blank line yet
        answer = sock.recv(1 << 16)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n") and answer.endswith(b"request head too large\n")
    with socket.create_connection(server.address("tcp"), timeout=30) as sock:
        sock.sendall(b"\n\n\n")
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)
    assert server.wait_received(3)["rejected"] == {"empty": 3}
    # One `line_rejected` line for the three (budget 1 per second); once that second has passed,
    # a status tick reports the other two.
    summary = server.wait_log("log_suppressed", where=lambda e: e.get("suppressed_event") == "line_rejected")
    assert summary["suppressed"] == 2
    assert [e["event"] for e in server.logs].count("line_rejected") == 1
