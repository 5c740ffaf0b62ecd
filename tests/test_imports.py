"""The import graph of `server/`: every module imports, imports run one way (stages never reach up
into the daemon, no circles), a log worker does not load the prime kernels (numba), and the
daemon loads the libraries only some requests need when such a request comes."""
from __future__ import annotations

import ast
import importlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "parsing", "stats", "detect", "pool", "persist", "publish", "primes", "alerts", "cluster")


def _module_names() -> dict[str, Path]:
    names = {}
    for path in sorted((ROOT / "server").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _imports(name: str, path: Path) -> set[str]:
    """The server modules `name` imports, anywhere in the file (functions and TYPE_CHECKING too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    targets = set()
    for target in found:
        while target and target not in MODULES:  # `from logtallyd.x import name`: the module x
            target = target.rpartition(".")[0]
        if target and target != name:
            targets.add(target)
    return targets


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.endswith("__main__")))  # that one runs
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


# Commands reach the server object it is handed through its type; that one import goes when
# the control protocol answers with typed Structs instead (strict: this list must then shrink).
_KNOWN: set[str] = set()
_STAGE_MODULES = [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="imports logtallyd.daemon.app")) if n in _KNOWN else n
    for n in sorted(MODULES) if n.count(".") >= 1 and n.split(".")[1] in STAGES
]


@pytest.mark.parametrize("name", _STAGE_MODULES)
def test_no_stage_module_imports_the_daemon(name: str) -> None:
    assert {t for t in GRAPH[name] if t == "logtallyd.daemon" or t.startswith("logtallyd.daemon.")} == set()
    assert {t for t in GRAPH[name] if t.startswith("logtallyd.offline")} == set()  # a core never imports a CLI


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = {name: targets - ({"logtallyd.daemon.app"} if name in _KNOWN else set()) for name, targets in GRAPH.items()}
    assert _cycles(graph) == []


def _warm_worker_modules() -> tuple[bool, bool, bool]:
    from logtallyd.pool.worker import warm_up

    warm_up()
    return "numba" in sys.modules, "logtallyd.primes.kernels" in sys.modules, "numpy" in sys.modules


def test_a_warmed_up_log_worker_has_not_loaded_numba() -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        assert pool.submit(_warm_worker_modules).result(timeout=60) == (False, False, False)


def _sketch_library_loaded_after_a_batch() -> tuple[bool, bool, int]:
    from logtallyd.pool.worker import WorkerOptions, decode_result, process_batch, warm_up

    warm_up()
    frames = [b'10.0.0.1 - - [30/Jan/2025:12:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8" 0.004',
              b"<11>1 2025-01-30T12:00:00Z h app - - - failed"]
    result = decode_result(process_batch(frames, 1738238400.0, WorkerOptions(), 0, None, [("10.1.1.1", 2)]))
    return "_datasketches" in sys.modules, "numpy" in sys.modules, len(result.partial)


def test_a_log_worker_does_not_load_the_sketch_library() -> None:
    """Sketches are built in the main process: a worker holds neither datasketches nor numpy."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        loaded_ds, loaded_numpy, size = pool.submit(_sketch_library_loaded_after_a_batch).result(timeout=60)
    assert (loaded_ds, loaded_numpy) == (False, False) and size > 0


def _kernels_loaded_after_a_segment() -> bool:
    from logtallyd.primes import sieve

    sieve.segment_stats(1, 1000, sieve.base_primes(1000))
    return "numba" in sys.modules


def test_a_prime_segment_loads_the_kernels_in_the_worker() -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        assert pool.submit(_kernels_loaded_after_a_segment).result(timeout=120) is True


_CACHE_PROBE = """
from logtallyd.primes import sieve
sieve.segment_stats(1, 10_000, sieve.base_primes(10_000))
sieve.segment_primes(1, 100, sieve.base_primes(100))
sieve.lane_stats(10**6, 2 * 10**6, 10**12, "probe")
kernels = sieve._kernels()
ks = (kernels.sieve_segment, kernels.stats, kernels.primes_of, kernels.start_large, kernels.cross_large,
      kernels.start_medium, kernels.cross_medium)
print(sum(sum(k.stats.cache_misses.values()) for k in ks), sum(sum(k.stats.cache_hits.values()) for k in ks))
"""


def test_prime_kernels_load_from_numbas_cache_after_a_restart(tmp_path) -> None:
    """Loading the kernels lazily must not cost a compile: a second process reads the cache,
    which lives where `sieve.numba_cache_dir` says (here $XDG_CACHE_HOME/logtally/numba)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "CACHE_DIRECTORY")}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    first = subprocess.run([sys.executable, "-c", _CACHE_PROBE], cwd=ROOT, env=env, capture_output=True,
                           text=True, check=True)
    assert first.stdout == "7 0\n"  # an empty cache: all seven compiled
    assert any((tmp_path / "logtally" / "numba").rglob("*.nbi"))
    second = subprocess.run([sys.executable, "-c", _CACHE_PROBE], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=True)
    assert second.stdout == "0 7\n"  # each kernel loaded from the cache, none compiled


_BUILD = """
import sys
import msgspec
from logtallyd.daemon.assembly import build
from logtallyd.daemon.config import decode_config
parts = build(decode_config({"cluster": {"nats": sys.argv[1]}, "state": {"directory": ""}}))
print("nats" in sys.modules, "logtallyd.cluster.node" in sys.modules, parts.cluster is not None)
parts.executor.shutdown()
"""


@pytest.mark.parametrize(("nats", "loaded"), [("", "False False False"), ("nats://127.0.0.1:1", "False True True")])
def test_nats_is_imported_only_by_a_cluster_node_once_it_connects(tmp_path: Path, nats: str, loaded: str) -> None:
    out = subprocess.run([sys.executable, "-c", _BUILD, nats], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path)},
                         cwd=tmp_path, check=True)
    assert out.stdout.split("\n")[-2] == loaded


# Loaded by some requests only: the prime kernels (numpy, numba) by a prime job, in a worker; the
# sketch library (with numpy) by the first batch's merge; prometheus_client by the first scrape;
# the HTTP stack (FastAPI, pydantic, uvicorn) by the first HTTP client; rich (structlog's console
# tracebacks) on a terminal only.
_LATER = ("numpy", "numba", "_datasketches", "prometheus_client", "fastapi", "pydantic", "starlette", "uvicorn",
          "rich", "importlib.metadata", "logtallyd.primes.kernels", "logtallyd.publish.api")

# The daemon, telling on stderr which of the modules named in argv[1] it has loaded: right after
# `listening` (with the READY notification) and on each SIGUSR1.
_TELLING = """
import json
import signal
import sys

from logtallyd.daemon import sdnotify
from logtallyd.daemon.cli import main

notify = sdnotify.notify


def tell(*_):
    print(json.dumps(sorted(m for m in sys.argv[1].split(",") if m in sys.modules)), file=sys.stderr, flush=True)


def reporting(*lines, **kwargs):
    if sdnotify.READY in lines:
        tell()
    return notify(*lines, **kwargs)


sdnotify.notify = reporting
signal.signal(signal.SIGUSR1, tell)
sys.exit(main(sys.argv[2:]))
"""


def _control(address: str, command: str) -> str:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(command.encode() + b"\n")
        return sock.makefile("rb").readline().decode()


def test_the_daemon_loads_what_only_some_requests_need_when_they_come(tmp_path: Path) -> None:
    """With the shipped config (HTTP on, JSON logs): at `listening` none of `_LATER` is loaded;
    after a line is counted, the sketch library; METRICS loads prometheus_client, the first
    HTTP request the HTTP stack (and is answered); a prime job or rich, never."""
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.toml").read_text())
    args = ["--config", str(config), "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--control", "127.0.0.1:0",
            "--http", "127.0.0.1:0"]
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    env.update(PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, "-c", _TELLING, ",".join(_LATER), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def loaded() -> list[str]:
        proc.send_signal(signal.SIGUSR1)
        return json.loads(proc.stderr.readline())  # type: ignore[union-attr]

    try:
        assert proc.stdout is not None and proc.stderr is not None
        listening: dict = {}
        for line in proc.stdout:
            if json.loads(line).get("event") == "listening":
                listening = json.loads(line)
                break
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        assert json.loads(proc.stderr.readline()) == []
        host, port = listening["tcp"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"<134>1 2025-01-30T12:00:00Z host app - - - counted\n")
        while json.loads(_control(listening["control"], "STATS"))["parsed"] < 1:
            time.sleep(0.05)
        assert loaded() == ["_datasketches", "numpy"]
        assert "logtally_lines_received_total 1.0" in json.loads(_control(listening["control"], "METRICS"))["metrics"]
        assert loaded() == ["_datasketches", "importlib.metadata", "numpy", "prometheus_client"]
        with urllib.request.urlopen(f"http://{listening['http']}/metrics", timeout=30) as answer:
            assert answer.status == 200 and b"logtally_lines_received_total 1.0" in answer.read()
        assert set(loaded()) == set(_LATER) - {"numba", "rich", "logtallyd.primes.kernels"}
    finally:
        proc.terminate()
        proc.wait(30)
