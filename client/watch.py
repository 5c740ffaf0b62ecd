"""`watch`: poll the control port every interval and show the answers like `top` does.

On a terminal the screen is drawn by rich on the alternate screen and redrawn in place, so the
scrollback does not grow; through a pipe each refresh is appended as plain text (or JSON).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import deque
from typing import Any, Iterator

from rich.live import Live

from logtally import PROG, render
from logtally.control import Control
from logtally.dashboard import Snapshot, screen
from logtally.terminal import console_for, is_terminal

KEEP_RATES = 120  # refreshes of lines/s kept for the sparkline
EVENTS_ASKED = 1000  # recent events asked each refresh, to count those in the window
TOP_FIELDS = ("path", "error", "ip")
TOP_ROWS = 5


class RateMeter:
    """Lines/s between refreshes, from the daemon's running `received` total."""

    def __init__(self, keep: int = KEEP_RATES) -> None:
        self.rates: deque[float] = deque(maxlen=keep)
        self._last: tuple[int, float] | None = None

    def add(self, received: int, now: float) -> None:
        if self._last is not None and now > self._last[1]:
            self.rates.append(max(0, received - self._last[0]) / (now - self._last[1]))
        self._last = (received, now)


async def poll(control: Control, window: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    report = await control.ask(f"STATS {window}")
    totals = report if window == "all" else await control.ask("STATS all")
    events = (await control.ask(f"EVENTS {EVENTS_ASKED}"))["events"]
    tops = {name: (await control.ask(f"TOP {name} {TOP_ROWS} {window}"))["top"] for name in TOP_FIELDS}
    return report, totals, events, tops


async def run_watch(args: argparse.Namespace) -> int:
    control = await Control.connect(args.control)
    try:
        if args.json:
            await _appended(control, args, lambda report: json.dumps(report) + "\n")
        elif is_terminal(sys.stdout):
            await _live(control, args)
        else:
            await _appended(control, args, lambda report: _plain(report, args))
    finally:
        await control.close()
    return 0


def _plain(report: dict[str, Any], args: argparse.Namespace) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"{PROG} {args.control}  window {args.window}  {when}\n\n{render.stats_table(report)}\n\n"


async def _appended(control: Control, args: argparse.Namespace, text_of: Any) -> None:
    while True:
        report = await control.ask(f"STATS {args.window}")
        sys.stdout.write(text_of(report))
        sys.stdout.flush()
        await asyncio.sleep(args.interval)


async def _live(control: Control, args: argparse.Namespace) -> None:
    console = console_for(sys.stdout, args.color)
    meter = RateMeter()
    quit_pressed = asyncio.Event()
    with _keys(quit_pressed), Live(console=console, screen=True, auto_refresh=False,
                                   redirect_stdout=False, redirect_stderr=False) as live:
        while not quit_pressed.is_set():
            report, totals, events, tops = await poll(control, args.window)
            meter.add(totals.get("received", 0), time.monotonic())
            snapshot = Snapshot(args.control, args.window, report, totals, events, tops,
                                list(meter.rates), time.time())
            width, height = console.size
            live.update(screen(snapshot, width, height), refresh=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(quit_pressed.wait(), args.interval)


@contextlib.contextmanager
def _keys(quit_pressed: asyncio.Event) -> Iterator[None]:
    """Read single keys from a terminal stdin (cbreak mode) and set `quit_pressed` on q."""
    if not is_terminal(sys.stdin):
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def on_key() -> None:
        if os.read(fd, 64).lower().count(b"q"):
            quit_pressed.set()

    tty.setcbreak(fd)
    loop.add_reader(fd, on_key)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
