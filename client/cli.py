"""`logtide`: ship logs to logtided and ask it what is happening."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from client import render
from client.control import Control, ControlError, ask
from client.send import send_all

CONTROL = "127.0.0.1:5141"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logtide", description="Ship logs to logtided and query it.")
    parser.add_argument("--control", default=CONTROL, help=f"control HOST:PORT (default {CONTROL})")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("send", help="stream files (.gz too) or stdin (-) to the ingest port")
    p.add_argument("paths", nargs="+", metavar="FILE", help="files, .gz files, or - for stdin")
    p.add_argument("--to", default="127.0.0.1:5140", help="ingest HOST:PORT (default 127.0.0.1:5140)")
    p.add_argument("--concurrency", type=int, default=8, help="files sent at once (one connection each)")
    p.add_argument("--octet-count", action="store_true", help="RFC 6587 octet-counted framing (syslog lines)")
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
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--window", default="1m")

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
    p.add_argument("--contains")
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
    except BrokenPipeError:
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
        for name in ("service", "host", "ip"):
            if getattr(args, name):
                terms.append(f"{name}={getattr(args, name)}")
        if args.contains:
            terms.append(f"contains:{args.contains}")
        return await follow(args.control, "SUBSCRIBE " + " ".join(terms), args.json)
    if command == "prime":
        from client.prime import do_prime

        return await do_prime(args)
    return 2


async def do_send(args: argparse.Namespace) -> int:
    before = None
    if args.wait:
        before = (await ask(args.control, "STATS"))["received"]
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
        summary["server"] = await wait_accounted(args.control, before + lines)
    if args.json:
        print(json.dumps(summary))
    else:
        print(render.send_summary(summary), file=sys.stderr)
    return 1 if summary["errors"] else 0


async def wait_accounted(control_address: str, target: int, timeout: float = 120.0) -> dict[str, Any]:
    """Poll STATS until `received` reaches `target` (or stops moving)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    control = await Control.connect(control_address)
    try:
        while True:
            report = await control.ask("STATS")
            if report["received"] >= target or loop.time() > deadline:
                return {k: report[k] for k in ("received", "parsed", "rejected")}
            await asyncio.sleep(0.05)
    finally:
        await control.close()


async def do_watch(args: argparse.Namespace) -> int:
    tty = sys.stdout.isatty()
    while True:
        report = await ask(args.control, f"STATS {args.window}")
        text = render.stats_table(report)
        if tty:
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
        else:
            sys.stdout.write(text + "\n\n")
        sys.stdout.flush()
        await asyncio.sleep(args.interval)


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
