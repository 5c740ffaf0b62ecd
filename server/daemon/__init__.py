"""The daemon: config, the parts and how they are wired, listeners, lifecycle, CLI and systemd glue."""
import sys


def _import_structlog_without_rich() -> None:
    """Import structlog with rich hidden from it, before any module of the daemon imports it.
    structlog imports rich (with pygments and attrs) at import time wherever rich is installed,
    for its console renderer's tracebacks: some 40 ms and 5 MiB before the daemon listens, though
    it logs JSON lines off a terminal. On a terminal the console renderer loads rich after all
    (`logsetup.console_renderer`)."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # now `import rich` raises ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_import_structlog_without_rich()
