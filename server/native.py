"""Compiled twins of a few hot pure-Python modules, used only when built from the same source.

`pip install` compiles each module of `MODULES` with mypyc (setup.py) into a twin beside it,
`<package>._<name>_native`, from a copy of its source that also records the source's SHA-256 as
`__native_source__`. `load(name)` returns the twin when it is there and was built from the
module's current source, else the module itself: a checkout edited after its last `pip install`,
a platform without a compiler or `LOGTALLY_NATIVE=0` in the environment all run the pure-Python
code, which is the same code, only slower (tests/test_native.py compares the two).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from types import ModuleType

# The modules compiled by setup.py, by import name (their files: the package folders, server/...).
MODULES = ("logtallyd.parsing.access", "logtallyd.parsing.applog", "logtallyd.parsing.rfc5424",
           "logtallyd.stats.linecount", "logtallyd.stats.webtally")
ENV = "LOGTALLY_NATIVE"  # "0": always the pure-Python modules


def twin_name(name: str) -> str:
    package, _, last = name.rpartition(".")
    return f"{package}._{last}_native"


def source_digest(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def _source_of(name: str) -> bytes:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"no source for {name}")
    with open(spec.origin, "rb") as f:
        return f.read()


def twin(name: str) -> ModuleType | None:
    """The compiled twin of module `name` if it exists and was built from its current source."""
    try:
        compiled = importlib.import_module(twin_name(name))
    except ImportError:
        return None
    if getattr(compiled, "__native_source__", None) != source_digest(_source_of(name)):
        return None  # built from an older source: stale, not to be trusted
    return compiled


def load(name: str) -> ModuleType:
    """Module `name`, or its compiled twin where that is built from the same source (see above)."""
    if name not in MODULES:
        raise ValueError(f"{name} is not one of the compiled modules {MODULES}")
    if os.environ.get(ENV, "1") != "0":
        compiled = twin(name)
        if compiled is not None:
            return compiled
    return importlib.import_module(name)


def status() -> dict[str, bool]:
    """Module name -> whether its compiled twin is in use (the tests ask)."""
    return {name: load(name) is not importlib.import_module(name) for name in MODULES}
