"""Control commands: words in, one JSON answer (or a stream of them) out.

`split_command` is the sans-I/O part (a line into a verb and its words); `Commands` answers each
verb from the server's parts. The control connection only moves lines.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from server.publish.control import Answer, ControlConnection
from server.publish.pubsub import TOPICS
from server.publish.tailfilter import compile_filter

if TYPE_CHECKING:
    from server.daemon.app import Server

HELP: dict[str, str] = {
    "HELP": "this list",
    "PING": "answers {\"pong\": true}",
    "STATS [window]": "totals and rolling statistics; window is all (default) or one of the configured windows",
    "TOP <field> [n] [window]": "top-n of ip, user_agent, path, service, host, status, error, suspicious_ip",
    "EVENTS [n]": "the last n anomaly events (default 20)",
    "SUBSCRIBE <topic>... [interval=S] [filter...]": "stream JSON lines: stats, anomalies, tail [level>=error service=api ip=... contains:text], jobs",
    "UNSUBSCRIBE [topic...]": "stop streaming (all topics by default)",
    "METRICS": "Prometheus text exposition of the daemon's own metrics",
    "PRIME COUNT <lo> <hi>": "count primes in [lo, hi] (long ranges return a job id; progress on topic jobs)",
    "PRIME LIST <lo> <hi>": "the primes in [lo, hi], streamed as JSON lines in chunks",
    "ISPRIME <n>": "deterministic Miller-Rabin below 3.3e24, BPSW probable-prime test beyond",
    "JOBS": "prime jobs and their progress",
    "CANCEL <id>": "stop a prime job",
    "QUIT": "close this connection",
}


def split_command(line: str) -> tuple[str, list[str]]:
    words = line.split()
    return (words[0].upper(), words[1:]) if words else ("", [])


class Commands:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def __call__(self, conn: ControlConnection, line: str) -> Answer:
        verb, args = split_command(line)
        if verb == "PRIME" and args:
            verb, args = "PRIME " + args[0].upper(), args[1:]
        method = getattr(self, "do_" + verb.replace(" ", "_"), None)
        if method is None:
            return {"error": f"unknown command {verb!r}; HELP lists the commands"}
        return await method(conn, args)

    async def do_HELP(self, conn: ControlConnection, args: list[str]) -> Answer:
        return {"commands": HELP}

    async def do_PING(self, conn: ControlConnection, args: list[str]) -> Answer:
        return {"pong": True}

    async def do_QUIT(self, conn: ControlConnection, args: list[str]) -> Answer:
        if conn.transport is not None:
            conn.transport.close()
        return None

    async def do_STATS(self, conn: ControlConnection, args: list[str]) -> Answer:
        window = args[0] if args else "all"
        if window not in self.server.windows:
            return {"error": f"unknown window {window!r}; windows: {', '.join(self.server.windows)}"}
        return self.server.stats_report(window)

    async def do_TOP(self, conn: ControlConnection, args: list[str]) -> Answer:
        if not args:
            return {"error": "usage: TOP <field> [n] [window]"}
        field, rest = args[0].lower(), args[1:]
        n, window = 10, "all"
        for word in rest:
            if word.isdigit():
                n = int(word)
            else:
                window = word
        if window not in self.server.windows:
            return {"error": f"unknown window {window!r}; windows: {', '.join(self.server.windows)}"}
        if not 1 <= n <= 1000:
            return {"error": "n must be between 1 and 1000"}
        try:
            items = self.server.stats.top(field, n, window, self.server.clock())
        except (KeyError, ValueError) as exc:
            return {"error": str(exc).strip("'\"")}
        return {"field": field, "window": window, "n": n, "top": items}

    async def do_EVENTS(self, conn: ControlConnection, args: list[str]) -> Answer:
        n = int(args[0]) if args and args[0].isdigit() else 20
        return {"events": self.server.recent_events(n)}

    async def do_METRICS(self, conn: ControlConnection, args: list[str]) -> Answer:
        return {"metrics": self.server.metrics_text()}

    async def do_SUBSCRIBE(self, conn: ControlConnection, args: list[str]) -> Answer:
        topics = [w.lower() for w in args if w.lower() in TOPICS]
        unknown = [w for w in args if w.lower() not in TOPICS and "=" not in w and ":" not in w
                   and "<" not in w and ">" not in w]
        if not topics or unknown:
            return {"error": f"usage: SUBSCRIBE <topic>... with topics {', '.join(TOPICS)}"}
        interval = self.server.config.control.default_interval_s
        filters: list[str] = []
        for word in args:
            if word.lower().startswith("interval="):
                try:
                    interval = float(word.split("=", 1)[1])
                except ValueError:
                    return {"error": f"bad interval {word!r}"}
                if not 0.05 <= interval <= 3600:
                    return {"error": "interval must be between 0.05 and 3600 seconds"}
            elif word.lower() not in TOPICS:
                filters.append(word)
        tail_filter = None
        if filters:
            tail_filter = compile_filter(filters)
            if isinstance(tail_filter, str):
                return {"error": tail_filter}
        conn.send({"subscribed": sorted(set(topics) | (conn.subscriber.topics if conn.subscriber else set()))})
        sub = conn.subscribe(topics)
        sub.interval_s = interval
        if "tail" in topics:
            sub.tail_filter = tail_filter
            sub.tail_terms = tuple(filters)
            self.server.tail_changed()
        return None

    async def do_UNSUBSCRIBE(self, conn: ControlConnection, args: list[str]) -> Answer:
        conn.unsubscribe([w.lower() for w in args] or None)
        self.server.tail_changed()
        return {"unsubscribed": [w.lower() for w in args] or "all"}

    async def do_PRIME_COUNT(self, conn: ControlConnection, args: list[str]) -> Answer:
        return await self.server.prime_count(args)

    async def do_PRIME_LIST(self, conn: ControlConnection, args: list[str]) -> Answer:
        return await self.server.prime_list(args)

    async def do_ISPRIME(self, conn: ControlConnection, args: list[str]) -> Answer:
        return await self.server.isprime(args)

    async def do_JOBS(self, conn: ControlConnection, args: list[str]) -> Answer:
        return {"jobs": self.server.jobs.jobs()}

    async def do_CANCEL(self, conn: ControlConnection, args: list[str]) -> Answer:
        if len(args) != 1:
            return {"error": "usage: CANCEL <id>"}
        ok = self.server.jobs.cancel(args[0])
        return {"cancelled": args[0]} if ok else {"error": f"no running job {args[0]!r}"}
