"""The dashboard page: one HTML template and one script (`static/`) that draw the panels, either
live from the HTTP API and its event stream (`/` on the daemon) or from data embedded in the page
(`analyze --html`, every asset inlined so the file opens offline).
"""
from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

__all__ = ["ASSETS", "asset", "live_page", "report_page"]

# What `/static/<name>` serves, with its media type; nothing else is read from the package.
ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}
_STYLES = ("uPlot.min.css", "dashboard.css")
_SCRIPTS = ("uPlot.iife.min.js", "dashboard.js")


def asset(name: str) -> bytes:
    """One file of `static/` by its name in `ASSETS` (KeyError for any other name)."""
    if name not in ASSETS:
        raise KeyError(name)
    return resources.files("logtallyd.publish").joinpath("static", name).read_bytes()


def _text(name: str) -> str:
    return resources.files("logtallyd.publish").joinpath("static", name).read_text(encoding="utf-8")


def _template() -> str:
    return _text("dashboard.html")


def live_page() -> str:
    """The daemon's `/`: the assets by URL, served by the daemon itself."""
    styles = "".join(f'<link rel="stylesheet" href="static/{name}">' for name in _STYLES)
    scripts = "".join(f'<script src="static/{name}"></script>' for name in _SCRIPTS)
    return _template().replace("<!--STYLES-->", styles).replace("<!--SCRIPTS-->", scripts) \
        .replace("<!--TITLE-->", "logtally dashboard")


def _inline_script(text: str) -> str:
    """A script fit for a `<script>` element (HTML §4.12.1.3: its text holds no `</script` and
    no `<!--`); the vendored files and ours hold neither, and a new version that did is refused."""
    lowered = text.lower()
    if "</script" in lowered or "<!--" in lowered:
        raise ValueError("a script to inline holds </script or <!--")
    return text


def _finite(value: Any) -> Any:
    """`value` with each float JSON cannot hold (a sum of huge latencies overflows to inf) as
    null, which the page shows as `-`, as the daemon's msgspec answers do."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def report_page(data: dict[str, Any], title: str) -> str:
    """One self-contained file: styles, the chart library and the script inlined, `data` as JSON."""
    styles = "".join(f"<style>{_text(name)}</style>" for name in _STYLES)
    embedded = json.dumps(_finite(data), ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
    scripts = (f'<script type="application/json" id="logtally-data">{embedded}</script>'
               + "".join(f"<script>{_inline_script(_text(name))}</script>" for name in _SCRIPTS))
    escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _template().replace("<!--STYLES-->", styles).replace("<!--SCRIPTS-->", scripts) \
        .replace("<!--TITLE-->", escaped)
