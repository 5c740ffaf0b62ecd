"""`logtide`: ship logs to logtided and ask it what is happening."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from client import render
from client.control import Control, ControlError, ask
from client.send import send_all

CONTROL = "127.0.0.1:5141"


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logtide", description="Ship logs to logtided and query it.")
    parser.add_argument("--control", default=CONTROL, help=f"control HOST:PORT (default {CONTROL})")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("send", help="stream files (.gz too) or stdin (-) to the ingest port")
    p.add_argument("paths", nargs="+", metavar="FILE", help="files, .gz files, or - for stdin")
    p.add_argument("--to", default="127.0.0.1:5140", help="ingest HOST:PORT (default 127.0.0.1:5140)")
    p.add_argument("--concurrency", type=int, default=8, help="files sent at once (one connection each)")
    p.add_argument("--octet-count", action="store_true", help="RFC 6587 octet-counted framing for syslog lines (`<PRI>...`); other lines stay LF-terminated")
    p.add_argument("--wait", action="store_true", help="wait until the server has accounted for every line")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("stats", help="totals and rolling statistics")
    p.add_argument("--window", default="all")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("top", help="top-N table of a field")
    p.add_argument("field", choices=["ip", "user_agent", "path", "service", "host", "status", "error", "suspicious_ip"])
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--window", default="all")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("watch", help="statistics refreshing in place")
    p.add_argument("--interval", type=_positive, default=1.0, help="seconds between refreshes (default 1)")
    p.add_argument("--window", default="1m", help="window to show (default 1m)")

    p = sub.add_parser("events", help="recent anomaly events, then follow new ones")
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--no-follow", action="store_true")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("subscribe", help="stream a topic (stats, anomalies, tail, jobs)")
    p.add_argument("topics", nargs="+")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("tail", help="live parsed records matching a filter")
    p.add_argument("--level", help="minimum level, e.g. error")
    p.add_argument("--service")
    p.add_argument("--host")
    p.add_argument("--ip")
    p.add_argument("--format", help="rfc5424, rfc3164, json, access, app or raw")
    p.add_argument("--contains", help="substring of the message")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("prime", help="prime-number jobs on the server's worker pool")
    p.add_argument("action", choices=["count", "list", "is", "jobs", "cancel"])
    p.add_argument("args", nargs="*")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(dispatch(args))
    except ControlError as exc:
        print(f"logtide: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `logtide tail | head`
        return 0


async def dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "send":
        return await do_send(args)
    if command == "stats":
        report = await ask(args.control, f"STATS {args.window}")
        print(json.dumps(report) if args.json else render.stats_table(report))
        return 0
    if command == "top":
        answer = await ask(args.control, f"TOP {args.field} {args.n} {args.window}")
        print(json.dumps(answer) if args.json else render.top_table(answer))
        return 0
    if command == "watch":
        return await do_watch(args)
    if command == "events":
        return await do_events(args)
    if command == "subscribe":
        return await follow(args.control, "SUBSCRIBE " + " ".join(args.topics), args.json)
    if command == "tail":
        terms = ["tail"]
        if args.level:
            terms.append(f"level>={args.level}")
        for name in ("service", "host", "ip", "format"):
            if getattr(args, name):
                terms.append(f"{name}={getattr(args, name)}")
        if args.contains:
            terms.append(f"contains:{args.contains}")
        if any(len(term.split()) != 1 for term in terms):
            # The control protocol splits a command on whitespace; a term cannot hold a space.
            raise ControlError("tail filters are single words (no spaces): " + " ".join(terms[1:]))
        return await follow(args.control, "SUBSCRIBE " + " ".join(terms), args.json)
    if command == "prime":
        from client.prime import do_prime

        return await do_prime(args)
    return 2


async def do_send(args: argparse.Namespace) -> int:
    before = None
    if args.wait:
        before = _accounting(await ask(args.control, "STATS"))
    results, seconds = await send_all(args.paths, args.to, args.concurrency, args.octet_count)
    lines = sum(r.lines for r in results)
    summary: dict[str, Any] = {
        "files": len(results),
        "lines": lines,
        "bytes": sum(r.bytes for r in results),
        "seconds": round(seconds, 3),
        "lines_per_s": round(lines / seconds) if seconds else None,
        "errors": {r.name: r.error for r in results if r.error},
    }
    if before is not None:
        summary["server"] = await wait_accounted(args.control, before, lines)
    if args.json:
        print(json.dumps(summary))
    else:
        print(render.send_summary(summary), file=sys.stderr)
    return 1 if summary["errors"] else 0


def _accounting(report: dict[str, Any]) -> dict[str, Any]:
    return {"received": report["received"], "parsed": report["parsed"], "rejected": dict(report["rejected"])}


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    rejected = {reason: n - before["rejected"].get(reason, 0) for reason, n in after["rejected"].items()}
    return {
        "received": after["received"] - before["received"],
        "parsed": after["parsed"] - before["parsed"],
        "rejected": {reason: n for reason, n in rejected.items() if n},
    }


async def wait_accounted(control_address: str, before: dict[str, Any], lines: int,
                         timeout: float = 120.0, settle_s: float = 1.0) -> dict[str, Any]:
    """Poll STATS until the server has counted `lines` more lines than `before`; return the increase.

    The server may count a different number of lines than we sent (NUL bytes also end a frame,
    a digit-led line may be octet-counted), so we also stop once the count has not moved for
    `settle_s` with the server's pipeline empty, or at `timeout`. Lines other senders ship
    meanwhile are in the increase too.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    control = await Control.connect(control_address)
    try:
        last, since = -1, loop.time()
        while True:
            report = await control.ask("STATS")
            delta = _delta(_accounting(report), before)
            now = loop.time()
            if delta["received"] != last:
                last, since = delta["received"], now
            pipeline = report.get("pipeline") or {}
            idle = not any(pipeline.get(k) for k in ("in_flight", "queued_batches", "buffered_bytes"))
            if delta["received"] >= lines or now > deadline or (idle and now - since >= settle_s):
                return delta
            await asyncio.sleep(0.05)
    finally:
        await control.close()


async def do_watch(args: argparse.Namespace) -> int:
    """STATS every interval: redrawn in place on a terminal, appended (blank-line separated) otherwise."""
    tty = sys.stdout.isatty()
    control = await Control.connect(args.control)
    try:
        while True:
            report = await control.ask(f"STATS {args.window}")
            text = f"logtide {args.control}  window {args.window}  {time.strftime('%H:%M:%S')}\n\n"
            text += render.stats_table(report)
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
            else:
                sys.stdout.write(text + "\n\n")
            sys.stdout.flush()
            await asyncio.sleep(args.interval)
    finally:
        await control.close()


async def do_events(args: argparse.Namespace) -> int:
    control = await Control.connect(args.control)
    try:
        recent = await control.ask(f"EVENTS {args.n}")
        for event in recent["events"]:
            print(json.dumps(event) if args.json else render.event_line(event), flush=True)
        if args.no_follow:
            return 0
        await control.send("SUBSCRIBE anomalies")
        async for message in control.stream():
            if "subscribed" in message:
                continue
            print(json.dumps(message) if args.json else render.message_line(message), flush=True)
    finally:
        await control.close()
    return 0


async def follow(address: str, command: str, raw: bool) -> int:
    control = await Control.connect(address)
    try:
        first = await control.ask(command)
        if not raw:
            print(f"# subscribed to {', '.join(first['subscribed'])}", file=sys.stderr)
        async for message in control.stream():
            print(json.dumps(message) if raw else render.message_line(message), flush=True)
    finally:
        await control.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
