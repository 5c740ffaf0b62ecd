"""The command line: ship logs to the daemon and ask it what is happening.

One argparse definition serves parsing, `--help`, the completion scripts and the man page.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, Callable

import shtab

from logtally import DAEMON, PROG, client_version, render
from logtally.control import Control, ControlError, ask
from logtally.send import send_all
from logtally.tail import record_row
from logtally.terminal import console_for, is_terminal

CONTROL = "127.0.0.1:5141"
INGEST = "127.0.0.1:5140"
TOP_FIELDS = ["ip", "user_agent", "path", "service", "host", "status", "error", "suspicious_ip"]
SHELLS = ["bash", "zsh", "fish"]

# Options every sub-command takes, before or after its name. Their default is SUPPRESS in both
# places, so a sub-parser that did not see an option leaves the main parser's value alone
# (argparse copies a sub-parser's defaults over the main namespace otherwise); `_globals_filled`
# sets the real defaults once both have parsed.
GLOBAL_DEFAULTS: dict[str, Any] = {"control": CONTROL, "token_file": None, "json": False, "color": "auto"}
TOKEN_ENV = "LOGTALLY_TOKEN_FILE"  # the default of --token-file


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _count_arg(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _global_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("global options (before or after the command)")
    group.add_argument("--control", default=argparse.SUPPRESS, metavar="ADDRESS",
                       help=f"{DAEMON} control address, HOST:PORT or unix:PATH for its Unix socket (default {CONTROL})")
    token = group.add_argument("--token-file", default=argparse.SUPPRESS, metavar="FILE",
                               help=f"send AUTH with the token in FILE before tail, subscribe and prime jobs over TCP "
                                    f"(default ${TOKEN_ENV})")
    token.complete = shtab.FILE  # type: ignore[attr-defined]
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print JSON (one object per line) instead of text")
    group.add_argument("--color", choices=["auto", "always", "never"], default=argparse.SUPPRESS,
                       help="colour for watch, tail and progress: on a terminal (auto), always, or never; "
                            "NO_COLOR is honoured too")
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = argparse.ArgumentParser(prog=PROG, parents=[common],
                                     description=f"Ship logs to {DAEMON} and query it.")
    parser.add_argument("--version", action="version", version=f"{PROG} {client_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=summary, description=summary[0].upper() + summary[1:] + ".")

    p = command("send", "stream files (.gz too) or stdin (-) to the ingest port")
    paths = p.add_argument("paths", nargs="+", metavar="FILE", help="files, .gz files, or - for stdin")
    paths.complete = shtab.FILE  # type: ignore[attr-defined]  # read by shtab for `completion`
    p.add_argument("--to", default=INGEST, metavar="HOST:PORT", help=f"ingest TCP address (default {INGEST})")
    p.add_argument("--concurrency", type=_count_arg, default=8, metavar="N",
                   help="files sent at once, one connection each (default 8)")
    p.add_argument("--octet-count", action="store_true",
                   help="RFC 6587 octet-counted framing for syslog lines (`<PRI>...`); other lines stay LF-terminated")
    p.add_argument("--wait", action="store_true", help="wait until the server has accounted for every line")

    p = command("stats", "totals and rolling statistics")
    p.add_argument("--window", default="all", help="all (default) or a configured window such as 1m, 5m, 1h")
    p.add_argument("--cluster", action="store_true", help="the fleet's merged view (a daemon started with --nats)")

    p = command("top", "top-N table of a field")
    p.add_argument("field", choices=TOP_FIELDS, help="the field to rank")
    p.add_argument("-n", type=_count_arg, default=10, metavar="N", help="rows to show (default 10)")
    p.add_argument("--window", default="all", help="all (default) or a configured window such as 1m, 5m, 1h")
    p.add_argument("--cluster", action="store_true", help="the fleet's merged view (a daemon started with --nats)")

    p = command("watch", "a full-screen view of the statistics, refreshed in place like top")
    p.add_argument("--interval", type=_positive, default=1.0, metavar="SECONDS",
                   help="seconds between refreshes (default 1)")
    p.add_argument("--window", default="1m", help="window the sections show (default 1m)")

    command("senders", "one row per sender: seen times, lines, bytes, rate against its baseline, framing, rejects")

    p = command("events", "recent anomaly events, then follow new ones")
    p.add_argument("-n", type=_count_arg, default=20, metavar="N", help="recent events to print first (default 20)")
    p.add_argument("--no-follow", action="store_true", help="print the recent events and exit")
    p.add_argument("--cluster", action="store_true", help="the fleet's events (a daemon started with --nats)")

    command("cluster", "every node of the fleet: last published second, lag, lines contributed, up or down")

    command("alerts", "alerts firing now and each alert route's sent, retried, failed and dropped counts")

    p = command("history", "per-minute trends kept by the daemon, one sparkline row per series")
    p.add_argument("--series", default="lines,errors,error_rate,latency_p95", metavar="NAME,...",
                   help="comma-separated series (default lines,errors,error_rate,latency_p95; HELP lists all)")
    p.add_argument("--step", type=_count_arg, default=60, metavar="SECONDS",
                   help="seconds per point, a multiple of 60 (default 60)")
    p.add_argument("--since", default="6h", help="how far back, like 90m, 6h or 7d (default 6h)")

    p = command("subscribe", "stream a topic (stats, anomalies, tail, jobs)")
    p.add_argument("topics", nargs="+", metavar="TOPIC",
                   help="stats, anomalies, tail or jobs; interval=S and tail filters such as level>=error")

    p = command("tail", "live parsed records matching a filter")
    p.add_argument("--level", help="minimum level, e.g. error")
    p.add_argument("--service", help="only records of this service (app name)")
    p.add_argument("--host", help="only records from this host")
    p.add_argument("--ip", help="only access-log records of this client IP")
    p.add_argument("--format", choices=["rfc5424", "rfc3164", "json", "access", "app", "raw"],
                   help="only records of this format")
    p.add_argument("--contains", help="substring of the message (one word)")

    p = command("prime", "prime-number jobs on the server's worker pool")
    p.add_argument("action", choices=["count", "list", "is", "jobs", "cancel"],
                   help="count LO HI, list LO HI, is N, jobs, cancel ID")
    p.add_argument("args", nargs="*", metavar="ARG", help="the action's numbers or job id")

    p = command("completion", "print a shell completion script")
    p.add_argument("shell", choices=SHELLS, help="the shell to complete for: " + ", ".join(SHELLS))
    return parser


def _globals_filled(args: argparse.Namespace) -> argparse.Namespace:
    for name, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.token_file is None:
        args.token_file = os.environ.get(TOKEN_ENV) or None
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return _globals_filled(build_parser().parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(dispatch(args))
    except ControlError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `logtally tail | head`
        return 0


async def dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "completion":
        from logtally.completion import completion_script

        sys.stdout.write(completion_script(build_parser(), args.shell))
        return 0
    if command == "send":
        return await do_send(args)
    fleet = " cluster" if getattr(args, "cluster", False) else ""
    if command == "stats":
        return await show(args, f"STATS {args.window}{fleet}", render.stats_table)
    if command == "top":
        return await show(args, f"TOP {args.field} {args.n} {args.window}{fleet}", render.top_table)
    if command == "cluster":
        return await show(args, "CLUSTER", render.cluster_table)
    if command == "watch":
        from logtally.watch import run_watch

        return await run_watch(args)
    if command == "senders":
        return await show(args, "SENDERS", render.senders_table)
    if command == "events":
        return await do_events(args)
    if command == "alerts":
        return await show(args, "ALERTS", render.alerts_table)
    if command == "history":
        return await show(args, f"HISTORY {args.series} {args.step} {args.since}", render.history_chart)
    if command == "subscribe":
        return await follow(args, "SUBSCRIBE " + " ".join(args.topics))
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
        return await follow(args, "SUBSCRIBE " + " ".join(terms))
    if command == "prime":
        from logtally.prime import do_prime

        return await do_prime(args)
    return 2


async def show(args: argparse.Namespace, line: str, render_table: Callable[[dict[str, Any]], str]) -> int:
    """Ask one control question; print the answer as JSON (`--json`) or as its table."""
    answer = await ask(args.control, line)
    print(json.dumps(answer) if args.json else render_table(answer))
    return 0


async def do_send(args: argparse.Namespace) -> int:
    before = None
    if args.wait:
        before = _accounting(await ask(args.control, "STATS"))
    if is_terminal(sys.stderr):
        from logtally.progress import SendProgress, total_bytes

        with SendProgress(console_for(sys.stderr, args.color), total_bytes(args.paths)) as bar:
            results, seconds = await send_all(args.paths, args.to, args.concurrency, args.octet_count, bar.advance)
    else:
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


async def do_events(args: argparse.Namespace) -> int:
    control = await Control.connect(args.control)
    try:
        fleet = " cluster" if args.cluster else ""
        recent = await control.ask(f"EVENTS {args.n}{fleet}")
        for event in recent["events"]:
            print(json.dumps(event) if args.json else render.event_line(event), flush=True)
        if args.no_follow:
            return 0
        await control.send(f"SUBSCRIBE anomalies{fleet}")
        async for message in control.stream():
            if "subscribed" in message:
                continue
            print(json.dumps(message) if args.json else render.message_line(message), flush=True)
    finally:
        await control.close()
    return 0


async def follow(args: argparse.Namespace, command: str) -> int:
    """Print a subscription's messages: JSON, fixed columns on a terminal, or plain lines."""
    control = await Control.connect(args.control, args.token_file)
    columns = (is_terminal(sys.stdout) and args.color != "never") or args.color == "always"
    console = console_for(sys.stdout, args.color) if columns and not args.json else None
    try:
        first = await control.ask(command)
        if not args.json:
            print(f"# subscribed to {', '.join(first['subscribed'])}", file=sys.stderr)
        async for message in control.stream():
            if args.json:
                print(json.dumps(message), flush=True)
            elif console is not None and message.get("type") == "record":
                console.print(record_row(message, console.width), crop=True)
            else:
                print(render.message_line(message), flush=True)
    finally:
        await control.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
