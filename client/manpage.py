"""The man page, generated from the argparse definitions by argparse-manpage.

`python -m logtally.manpage [DIR]` writes `DIR/<prog>.1` (DIR defaults to `man`); it is a build step,
so argparse-manpage is in the `man` and `test` extras, not a run-time dependency.
"""
from __future__ import annotations

import sys
from pathlib import Path

from logtally import DAEMON, PROG, client_version

__all__ = ["manpage", "write_manpage"]


def manpage() -> str:
    from argparse_manpage.manpage import Manpage

    from logtally.cli import build_parser

    page = Manpage(build_parser(), _data={
        "project_name": PROG,
        "version": client_version(),
        "manual_title": f"{PROG} manual",
        "description": f"ship logs to {DAEMON} and query it",
    })
    return str(page)


def write_manpage(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PROG}.1"
    path.write_text(manpage())
    return path


if __name__ == "__main__":
    print(write_manpage(Path(sys.argv[1] if len(sys.argv) > 1 else "man")))
