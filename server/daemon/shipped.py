"""The files the daemon ships beside its code: the commented default config and the systemd units.

An installed wheel carries them in `logtallyd/shipped/` (copied there by the build); a source
checkout, editable install included, reads them from the repository's top.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

UNITS = ("logtallyd.service", "logtallyd.socket", "logtallyd-control.socket", "logtallyd-http.socket")


def shipped_text(name: str) -> str:
    """`config.toml` or one of `UNITS`."""
    packaged = resources.files("logtallyd").joinpath("shipped", name)
    if packaged.is_file():
        return packaged.read_text()
    top = Path(__file__).resolve().parents[2]
    source = top / name if name == "config.toml" else top / "systemd" / name
    return source.read_text()
