"""logtally: the command-line client (send, stats, top, watch, events, tail, prime).

The program's name is written here once; the parser, messages, completion scripts and man page
take it from `PROG`.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

PROG = "logtally"
DAEMON = PROG + "d"
DISTRIBUTION = PROG

__all__ = ["DAEMON", "DISTRIBUTION", "PROG", "client_version"]


def client_version() -> str:
    """The installed distribution's version; a source tree that was never installed has none."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"
