"""The control protocol: command lines decoded from plain strings, lines cut from plain bytes,
and the connection shell driven through a mock transport (no sockets)."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import msgspec
import pytest
from hypothesis import given, strategies as st

from logtallyd.daemon.config import Config, ControlConfig
from logtallyd.primes.commands import Cancel, IsPrime, Jobs, PrimeCount, PrimeLimits, PrimeList
from logtallyd.primes.jobs import JobRejected
from logtallyd.publish.access import Access, Gate, is_privileged, redacted
from logtallyd.publish.commands import Commands
from logtallyd.publish.control import ControlConnection
from logtallyd.publish.lines import LineReader
from logtallyd.publish.protocol import (
    Auth, Cluster, CommandError, CommandLimits, Events, Help, Metrics, Ping, Quit, Stats, Subscribe, Top,
    Unsubscribe, decode_command,
)
from logtallyd.publish.pubsub import Hub

LIMITS = CommandLimits.from_config(Config())
WINDOWS = "windows: all, 1m, 5m, 15m"
TOPICS = "usage: SUBSCRIBE <topic>... with topics stats, anomalies, tail, jobs"


def error(message: str) -> CommandError:
    return CommandError(message)


DECODE = [
    # PING, HELP, METRICS, QUIT, JOBS take no words and ignore extra ones
    ("PING", Ping()),
    ("ping extra", Ping()),
    ("HELP", Help()),
    ("METRICS", Metrics()),
    ("QUIT", Quit()),
    ("quit now", Quit()),
    ("JOBS", Jobs()),
    ("jobs x", Jobs()),
    # AUTH <token>: exactly one word, kept as given (case and all)
    ("AUTH s3cret-Token", Auth("s3cret-Token")),
    ("auth s3cret-Token", Auth("s3cret-Token")),
    ("AUTH", error("usage: AUTH <token>")),
    ("AUTH two words", error("usage: AUTH <token>")),
    # STATS [window]
    ("STATS", Stats("all")),
    ("stats 5m", Stats("5m")),
    ("STATS 15m extra", Stats("15m")),
    ("STATS cluster", Stats("all", True)),
    ("STATS 5m CLUSTER", Stats("5m", True)),
    ("TOP ip 10 all cluster", Top("ip", 10, "all", True)),
    ("TOP ip cluster 3", Top("ip", 3, "all", True)),
    ("EVENTS 5 cluster", Events(5, True)),
    ("CLUSTER", Cluster()),
    ("SUBSCRIBE stats cluster", Subscribe(("stats.cluster",), 1.0, ())),
    ("SUBSCRIBE anomalies stats cluster interval=2", Subscribe(("anomalies.cluster", "stats.cluster"), 2.0, ())),
    ("SUBSCRIBE tail cluster", error("usage: SUBSCRIBE stats | anomalies cluster")),
    ("STATS 7m", error(f"unknown window '7m'; {WINDOWS}")),
    ("STATS 5M", error(f"unknown window '5M'; {WINDOWS}")),
    # TOP <field> [n] [window], n and window in either order, the last of each kind wins
    ("TOP error 5", Top("error", 5, "all")),
    ("TOP error", Top("error", 10, "all")),
    ("TOP IP 2", Top("ip", 2, "all")),
    ("TOP service 3 5m", Top("service", 3, "5m")),
    ("TOP service 5m 3", Top("service", 3, "5m")),
    ("TOP ip 3 5", Top("ip", 5, "all")),
    ("TOP ip 1m 5m", Top("ip", 10, "5m")),
    ("TOP nosuch", Top("nosuch", 10, "all")),  # the statistics know their fields
    ("TOP ip 1", Top("ip", 1, "all")),
    ("TOP ip 1000", Top("ip", 1000, "all")),
    ("TOP", error("usage: TOP <field> [n] [window]")),
    ("TOP ip 0", error("n must be between 1 and 1000")),
    ("TOP ip 1001", error("n must be between 1 and 1000")),
    ("TOP ip 99999999999999999999999999", error("n must be between 1 and 1000")),
    ("TOP ip 7x", error(f"unknown window '7x'; {WINDOWS}")),
    ("TOP ip 7m 0", error(f"unknown window '7m'; {WINDOWS}")),  # the window is checked first
    # str.isdigit accepts these, and int() then raised: they are words, so windows here
    ("TOP ip ²", error(f"unknown window '²'; {WINDOWS}")),
    ("TOP ip ٣", error(f"unknown window '٣'; {WINDOWS}")),
    ("TOP ip -3", error(f"unknown window '-3'; {WINDOWS}")),
    # EVENTS [n]: anything but ASCII digits means the default
    ("EVENTS 10", Events(10)),
    ("EVENTS", Events(20)),
    ("EVENTS 0", Events(0)),
    ("EVENTS 1 2", Events(1)),
    ("EVENTS x", Events(20)),
    ("EVENTS ²", Events(20)),
    ("EVENTS ٣", Events(20)),
    ("EVENTS 99999999999999999999999999", Events(10**18)),
    # SUBSCRIBE <topic>... [interval=S] [filter...]
    ("SUBSCRIBE anomalies", Subscribe(("anomalies",), 1.0, ())),
    ("SUBSCRIBE tail level>=error service=api", Subscribe(("tail",), 1.0, ("level>=error", "service=api"))),
    ("SUBSCRIBE STATS Tail", Subscribe(("stats", "tail"), 1.0, ())),
    ("SUBSCRIBE jobs contains:foo", Subscribe(("jobs",), 1.0, ("contains:foo",))),
    ("SUBSCRIBE stats interval=2", Subscribe(("stats",), 2.0, ())),
    ("SUBSCRIBE stats INTERVAL=2 interval=3", Subscribe(("stats",), 3.0, ())),
    ("SUBSCRIBE stats interval=0.05", Subscribe(("stats",), 0.05, ())),
    ("SUBSCRIBE stats interval=3600", Subscribe(("stats",), 3600.0, ())),
    ("SUBSCRIBE stats interval=1e1", Subscribe(("stats",), 10.0, ())),
    ("SUBSCRIBE stats interval=0.049", error("interval must be between 0.05 and 3600 seconds")),
    ("SUBSCRIBE stats interval=3600.001", error("interval must be between 0.05 and 3600 seconds")),
    ("SUBSCRIBE stats interval=nan", error("interval must be between 0.05 and 3600 seconds")),
    ("SUBSCRIBE stats interval=x", error("bad interval 'interval=x'")),
    ("SUBSCRIBE stats interval=", error("bad interval 'interval='")),
    ("SUBSCRIBE stats interval=²", error("bad interval 'interval=²'")),
    ("SUBSCRIBE stats interval=٣", error("bad interval 'interval=٣'")),
    ("SUBSCRIBE", error(TOPICS)),
    ("SUBSCRIBE nosuch", error(TOPICS)),
    ("SUBSCRIBE stats nosuch", error(TOPICS)),
    ("SUBSCRIBE tail level", error(TOPICS)),
    ("SUBSCRIBE interval=2", error(TOPICS)),
    ("SUBSCRIBE tail bogus=1", error("unknown filter field 'bogus'")),
    ("SUBSCRIBE tail level>=nosuch", error("unknown level 'nosuch'")),
    ("SUBSCRIBE tail service>=api", error("only level takes '>='")),
    ("SUBSCRIBE tail bogus=1 interval=x", error("bad interval 'interval=x'")),  # intervals are checked first
    # UNSUBSCRIBE [topic...]: empty means all; names are not checked
    ("UNSUBSCRIBE", Unsubscribe(())),
    ("UNSUBSCRIBE Stats TAIL", Unsubscribe(("stats", "tail"))),
    ("UNSUBSCRIBE nosuch", Unsubscribe(("nosuch",))),
    # PRIME COUNT <lo> <hi>: hi - lo <= max_range (10**12), hi <= max_value (10**16)
    ("PRIME COUNT 1 1e6", PrimeCount(1, 10**6)),
    ("prime count 1 10**3", PrimeCount(1, 1000)),
    ("PRIME COUNT 0 1_000_000_000_000", PrimeCount(0, 10**12)),
    ("PRIME COUNT 9999000000000000 1e16", PrimeCount(9999 * 10**12, 10**16)),
    ("PRIME COUNT 0 1000000000001",
     error("range too large: hi - lo = 1000000000001 exceeds the limit 1000000000000")),
    ("PRIME COUNT 10000000000000000 10000000000000001",
     error("hi too large: 10000000000000001 exceeds the limit 10000000000000000")),
    ("PRIME COUNT 1", error("usage: PRIME COUNT <lo> <hi>")),
    ("PRIME COUNT 1 2 3", error("usage: PRIME COUNT <lo> <hi>")),
    ("PRIME COUNT -5 10", error("lo: negative number not allowed: '-5'")),
    ("PRIME COUNT 10 2", error("hi (2) is below lo (10)")),
    ("PRIME COUNT ten 20", error("lo: not a number: 'ten'")),
    ("PRIME COUNT 1 ²", error("hi: not a number: '²'")),
    # PRIME LIST <lo> <hi>: hi - lo <= max_list (10**7)
    ("PRIME LIST 1 30", PrimeList(1, 30)),
    ("PRIME LIST 0 1e7", PrimeList(0, 10**7)),
    ("PRIME LIST 0 10000001", error("range too large: hi - lo = 10000001 exceeds the limit 10000000")),
    ("PRIME LIST 1", error("usage: PRIME LIST <lo> <hi>")),
    ("PRIME", error("unknown command 'PRIME'; HELP lists the commands")),
    ("PRIME FOO 1 2", error("unknown command 'PRIME FOO'; HELP lists the commands")),
    # ISPRIME <n>
    ("ISPRIME 561", IsPrime(561)),
    ("isprime 2**607", IsPrime(2**607)),
    ("ISPRIME", error("usage: ISPRIME <n>")),
    ("ISPRIME 1 2", error("usage: ISPRIME <n>")),
    ("ISPRIME 2**x", error("not a number: '2**x'")),
    ("ISPRIME -3", error("negative number not allowed: '-3'")),
    ("ISPRIME ²", error("not a number: '²'")),
    # CANCEL <id>
    ("CANCEL ab12cd34", Cancel("ab12cd34")),
    ("CANCEL", error("usage: CANCEL <id>")),
    ("CANCEL a b", error("usage: CANCEL <id>")),
    # unknown verbs
    ("NOSUCH", error("unknown command 'NOSUCH'; HELP lists the commands")),
    ("nosuch arg", error("unknown command 'NOSUCH'; HELP lists the commands")),
    ("", error("unknown command ''; HELP lists the commands")),
    ("\u2003", error("unknown command ''; HELP lists the commands")),
]


@pytest.mark.parametrize(("line", "expected"), DECODE, ids=[line or "<empty>" for line, _ in DECODE])
def test_decode(line: str, expected: object) -> None:
    assert decode_command(line, LIMITS) == expected


SMALL = CommandLimits(
    windows=("all", "1h"), max_command_bytes=64, max_top_n=5, min_interval_s=0.5, max_interval_s=2.5,
    default_interval_s=2.0, default_events=3, primes=PrimeLimits(max_range=100, max_list=10, max_value=1000),
)


@pytest.mark.parametrize(("line", "expected"), [
    ("STATS 1h", Stats("1h")),
    ("STATS 5m", error("unknown window '5m'; windows: all, 1h")),
    ("TOP ip 5 1h", Top("ip", 5, "1h")),
    ("TOP ip 6", error("n must be between 1 and 5")),
    ("EVENTS", Events(3)),
    ("SUBSCRIBE stats", Subscribe(("stats",), 2.0, ())),
    ("SUBSCRIBE stats interval=0.5", Subscribe(("stats",), 0.5, ())),
    ("SUBSCRIBE stats interval=2.6", error("interval must be between 0.5 and 2.5 seconds")),
    ("PRIME COUNT 0 100", PrimeCount(0, 100)),
    ("PRIME COUNT 0 101", error("range too large: hi - lo = 101 exceeds the limit 100")),
    ("PRIME LIST 990 1000", PrimeList(990, 1000)),
    ("PRIME LIST 995 1001", error("hi too large: 1001 exceeds the limit 1000")),
])
def test_decode_reads_its_limits(line: str, expected: object) -> None:
    assert decode_command(line, SMALL) == expected


def test_limits_come_from_the_config() -> None:
    config = msgspec.structs.replace(Config(), control=ControlConfig(
        max_command_bytes=100, max_top_n=7, min_interval_s=1.0, max_interval_s=9.0, default_interval_s=4.0,
        default_events=5,
    ))
    limits = CommandLimits.from_config(config)
    assert (limits.max_command_bytes, limits.max_top_n, limits.default_events) == (100, 7, 5)
    assert (limits.min_interval_s, limits.max_interval_s, limits.default_interval_s) == (1.0, 9.0, 4.0)
    assert limits.windows == ("all", "1m", "5m", "15m")
    assert limits.primes == PrimeLimits(10**12, 10**7, 10**16)


# -- lines -----------------------------------------------------------------------------------

TOO_LONG = CommandError("command longer than 8 bytes")


@pytest.mark.parametrize(("chunks", "expected"), [
    ([b"PING\n"], ["PING"]),
    ([b"PI", b"NG\r\n"], ["PING"]),
    ([b"\n\n  \r\nPING\nSTATS 5m\n"], ["PING", "STATS 5m"]),
    ([b"PING"], []),  # no newline yet
    ([b"PING \xff\n"], ["PING \ufffd"]),
    ([b"PING    \n"], ["PING"]),  # 8 bytes: exactly at the limit
    ([b"XXXXXXXX", b"\n"], ["XXXXXXXX"]),
    ([b"PING     \nPING\n"], [TOO_LONG, "PING"]),  # 9 bytes in one read
    ([b"XXXXXXXXX"], [TOO_LONG]),  # 9 bytes and no newline yet
    ([b"XXXXXXXXX", b"XXX\nPING\n"], [TOO_LONG, "PING"]),  # the tail of a refused line is no command
    ([b"XXXXX", b"XXXXX", b"XXXXX", b"XXXXX\n", b"PING\n"], [TOO_LONG, "PING"]),  # refused once
])
def test_line_reader(chunks: list[bytes], expected: list[object]) -> None:
    reader = LineReader(8)
    assert [line for chunk in chunks for line in reader.feed(chunk)] == expected


@given(st.binary(max_size=80), st.lists(st.integers(0, 80), max_size=6))
def test_line_reader_splits_anywhere_alike(data: bytes, cuts: list[int]) -> None:
    whole = LineReader(8).feed(data)
    reader = LineReader(8)
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    assert [line for a, b in zip(bounds, bounds[1:]) for line in reader.feed(data[a:b])] == whole


# -- the connection shell --------------------------------------------------------------------

class MockTransport:
    """Records what the connection writes and whether it closed, as uvicorn's tests do."""

    def __init__(self) -> None:
        self.buffer = b""
        self.closed = False
        self.reading_paused = False

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def get_extra_info(self, key: str) -> Any:
        return ("127.0.0.1", 40000) if key == "peername" else None

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.buffer += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 0, 65536

    def lines(self) -> list[bytes]:
        out, self.buffer = self.buffer.splitlines(keepends=True), b""
        return out


class FakeStatistics:
    def top(self, field: str, n: int, window: str, now: float) -> list[dict[str, Any]]:
        if field != "ip":
            raise ValueError(f"unknown field {field!r}; known: ip")
        return [{"value": "10.0.0.1", "count": 3, "share": 1.0}][:n]


class FakeJobs:
    """The job service's surface that the prime commands use."""

    def __init__(self) -> None:
        self.config = msgspec.structs.replace(Config().primes, max_jobs=1)
        self.running: set[str] = set()
        self.closed_streams = 0

    def start_count(self, lo: int, hi: int) -> str:
        if self.running:
            raise JobRejected("too many jobs (limit 1); CANCEL one or wait")
        self.running.add("job1")
        return "job1"

    async def wait(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        return None  # still running

    def check(self, kind: str, lo: int, hi: int) -> str | None:
        return "too many jobs (limit 1); CANCEL one or wait" if self.running else None

    async def list_primes(self, lo: int, hi: int) -> AsyncIterator[list[int]]:
        try:
            yield [p for p in (2, 3, 5, 7) if lo <= p <= hi]
            yield [p for p in (11, 13) if lo <= p <= hi]
        finally:
            self.closed_streams += 1

    async def isprime(self, n: int) -> dict[str, Any]:
        return {"n": n, "prime": n == 7}

    def jobs(self) -> list[dict[str, Any]]:
        return [{"id": job, "state": "running"} for job in sorted(self.running)]

    def cancel(self, job_id: str) -> bool:
        if job_id not in self.running:
            return False
        self.running.discard(job_id)
        return True


class Shell:
    """One ControlConnection over a MockTransport, with recording collaborators."""

    def __init__(self, config: Config = Config(), registry: set[ControlConnection] | None = None,
                 max_connections: int = 10, access: Access = "unix", token: str | None = None,
                 commands: Commands | None = None) -> None:
        self.hub = Hub(100, 30.0, lambda: 0.0)
        self.jobs = FakeJobs()
        self.tail_changes = 0
        self.reports: list[str] = []
        self.now = 0.0
        self.commands = commands or Commands(
            config, FakeStatistics(), self.jobs, lambda: 1000.0,  # type: ignore[arg-type]
            self.stats_report, lambda n: [f"event{i}" for i in range(min(n, 2))], lambda: "metric 1\n",
            token, lambda: self.now,
        )
        self.transport = MockTransport()
        self.conn = ControlConnection(self.commands, self.hub, set() if registry is None else registry,
                                      max_connections, self.tail_changed, access)
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]

    def stats_report(self, window: str) -> dict[str, Any]:
        if window == "1m":
            raise RuntimeError("boom")
        self.reports.append(window)
        return {"window": window, "received": 2}

    def tail_changed(self) -> None:
        self.tail_changes += 1

    async def send(self, data: bytes) -> list[bytes]:
        """Feed bytes, let the connection answer everything it can, and return its lines."""
        self.conn.data_received(data)
        for _ in range(100):  # the answers need no I/O: a few turns of the loop (two a command) finish them
            await asyncio.sleep(0)
        return self.transport.lines()

    async def end(self) -> list[bytes]:
        """Half-close, as `echo ... | nc -N` does; the connection answers, then closes."""
        self.conn.eof_received()
        assert self.conn._task is not None
        await self.conn._task
        return self.transport.lines()


async def test_answers_each_line_in_order() -> None:
    shell = Shell()
    assert await shell.send(b"PING\nSTATS 5m\nTOP ip 1\nEVENTS\nMETRICS\n") == [
        b'{"pong":true}\n',
        b'{"window":"5m","received":2}\n',
        b'{"field":"ip","window":"all","n":1,"top":[{"value":"10.0.0.1","count":3,"share":1.0}]}\n',
        b'{"events":["event0","event1"]}\n',
        b'{"metrics":"metric 1\\n"}\n',
    ]
    assert await shell.end() == []
    assert shell.transport.closed


async def test_help_names_every_verb() -> None:
    shell = Shell()
    [line] = await shell.send(b"HELP\n")
    assert list(msgspec.json.decode(line)["commands"]) == [
        "HELP", "PING", "STATS [window] [cluster]", "TOP <field> [n] [window] [cluster]", "EVENTS [n] [cluster]",
        "CLUSTER", "SUBSCRIBE <topic>... [interval=S] [filter...]", "UNSUBSCRIBE [topic...]", "METRICS",
        "SENDERS", "ALERTS", "HISTORY [series,...] [step] [since]", "PRIME COUNT <lo> <hi>", "PRIME LIST <lo> <hi>", "ISPRIME <n>", "JOBS", "CANCEL <id>", "AUTH <token>",
        "QUIT",
    ]


async def test_errors_are_answers() -> None:
    shell = Shell()
    assert await shell.send(b"NOSUCH\nSTATS 7m\nTOP nosuch\nTOP ip \xc2\xb2\nEVENTS \xc2\xb2\n") == [
        b'{"error":"unknown command \'NOSUCH\'; HELP lists the commands"}\n',
        b'{"error":"unknown window \'7m\'; windows: all, 1m, 5m, 15m"}\n',
        b'{"error":"unknown field \'nosuch\'; known: ip"}\n',
        b'{"error":"unknown window \'\xc2\xb2\'; windows: all, 1m, 5m, 15m"}\n',
        b'{"events":["event0","event1"]}\n',
    ]


async def test_a_failing_command_answers_and_the_connection_goes_on() -> None:
    shell = Shell()
    assert await shell.send(b"STATS 1m\nPING\n") == [
        b'{"error":"internal error: RuntimeError(\'boom\')"}\n',
        b'{"pong":true}\n',
    ]
    assert not shell.transport.closed


async def test_quit_closes_and_reads_no_further() -> None:
    shell = Shell()
    assert await shell.send(b"PING\nQUIT\nSTATS\n") == [b'{"pong":true}\n']
    assert shell.transport.closed
    assert shell.reports == []


async def test_command_longer_than_the_limit() -> None:
    config = msgspec.structs.replace(Config(), control=ControlConfig(max_command_bytes=16))
    shell = Shell(config)
    assert await shell.send(b"STATS all       \n") == [b'{"window":"all","received":2}\n']  # 16 bytes
    assert await shell.send(b"STATS all        \nPING\n") == [
        b'{"error":"command longer than 16 bytes"}\n', b'{"pong":true}\n',
    ]
    assert await shell.send(b"X" * 20) == [b'{"error":"command longer than 16 bytes"}\n']
    assert await shell.send(b"XXXX\nPING\n") == [b'{"pong":true}\n']


async def test_too_many_connections() -> None:
    registry: set[ControlConnection] = set()
    first = Shell(registry=registry, max_connections=1)
    second = Shell(registry=registry, max_connections=1)
    assert second.transport.lines() == [b'{"error":"too many control connections"}\n']
    assert second.transport.closed and registry == {first.conn}
    first.conn.connection_lost(None)
    assert registry == set()


async def test_subscribe_streams_and_unsubscribe_stops() -> None:
    shell = Shell()
    assert await shell.send(b"SUBSCRIBE tail level>=error service=api\n") == [b'{"subscribed":["tail"]}\n']
    [sub] = shell.hub.subscribers
    assert (sub.topics, sub.tail_terms, sub.interval_s, shell.tail_changes) == (
        {"tail"}, ("level>=error", "service=api"), 1.0, 1)
    shell.hub.publish_tail([
        {"service": "api", "severity": 3, "message": "kept"},
        {"service": "api", "severity": 6, "message": "info"},
        {"service": "web", "severity": 3, "message": "other service"},
    ])
    assert shell.transport.lines() == [b'{"type":"record","service":"api","severity":3,"message":"kept"}\n']

    # A second SUBSCRIBE adds topics and sets the interval; the tail filter stays.
    assert await shell.send(b"SUBSCRIBE stats interval=2\n") == [b'{"subscribed":["stats","tail"]}\n']
    assert shell.hub.subscribers == {sub}
    assert (sub.topics, sub.tail_terms, sub.interval_s, shell.tail_changes) == (
        {"stats", "tail"}, ("level>=error", "service=api"), 2.0, 1)

    assert await shell.send(b"UNSUBSCRIBE tail\n") == [b'{"unsubscribed":["tail"]}\n']
    assert (sub.topics, shell.tail_changes) == ({"stats"}, 2)
    assert await shell.send(b"UNSUBSCRIBE\n") == [b'{"unsubscribed":"all"}\n']
    assert shell.hub.subscribers == set() and shell.conn.subscriber is None and shell.tail_changes == 3
    shell.hub.publish("stats", {"type": "stats"})
    assert shell.transport.lines() == []


async def test_subscribe_errors_leave_no_subscriber() -> None:
    shell = Shell()
    assert await shell.send(b"SUBSCRIBE tail bogus=1\nSUBSCRIBE stats interval=0.01\n") == [
        b'{"error":"unknown filter field \'bogus\'"}\n',
        b'{"error":"interval must be between 0.05 and 3600 seconds"}\n',
    ]
    assert shell.hub.subscribers == set() and shell.tail_changes == 0


async def test_answers_queue_behind_a_paused_stream() -> None:
    shell = Shell()
    assert await shell.send(b"SUBSCRIBE jobs\n") == [b'{"subscribed":["jobs"]}\n']
    shell.conn.pause_writing()
    shell.hub.publish("jobs", {"type": "job_progress"})
    assert await shell.send(b"PING\n") == []
    shell.conn.resume_writing()
    assert await shell.send(b"") == [b'{"type":"job_progress"}\n', b'{"pong":true}\n']


async def test_a_client_with_too_many_unanswered_commands_stops_being_read() -> None:
    shell = Shell(msgspec.structs.replace(Config(), control=msgspec.structs.replace(
        Config().control, max_pending_commands=4)))
    shell.conn.pause_writing()  # its answers are not being read
    assert await shell.send(b"PING\n" * 10) == []
    assert shell.transport.reading_paused
    shell.conn.resume_writing()
    assert await shell.send(b"") == [b'{"pong":true}\n'] * 10
    assert not shell.transport.reading_paused


async def test_end_of_input_closes_a_subscriber_too() -> None:
    shell = Shell()
    assert await shell.send(b"SUBSCRIBE anomalies\n") == [b'{"subscribed":["anomalies"]}\n']
    assert await shell.end() == []
    assert shell.transport.closed
    shell.conn.connection_lost(None)
    assert shell.hub.subscribers == set()


async def test_prime_commands() -> None:
    shell = Shell()
    assert await shell.send(b"PRIME LIST 1 12\n") == [
        b'{"primes":[2,3,5,7]}\n', b'{"primes":[11]}\n', b'{"done":true,"lo":1,"hi":12,"count":5}\n',
    ]
    assert shell.jobs.closed_streams == 1
    assert await shell.send(b"PRIME COUNT 1 1e12\nPRIME COUNT 1 10\nPRIME LIST 1 10\nJOBS\n") == [
        b'{"job":"job1","state":"running","lo":1,"hi":1000000000000}\n',
        b'{"error":"too many jobs (limit 1); CANCEL one or wait"}\n',
        b'{"error":"too many jobs (limit 1); CANCEL one or wait"}\n',
        b'{"jobs":[{"id":"job1","state":"running"}]}\n',
    ]
    assert await shell.send(b"CANCEL job1\nCANCEL job1\nISPRIME 7\nPRIME COUNT 1 1e30\n") == [
        b'{"cancelled":"job1"}\n',
        b'{"error":"no running job \'job1\'"}\n',
        b'{"n":7,"prime":true}\n',
        b'{"error":"range too large: hi - lo = 999999999999999999999999999999 exceeds the limit 1000000000000"}\n',
    ]


async def test_reconfigure_applies_to_the_next_command() -> None:
    shell = Shell()
    assert await shell.send(b"TOP ip 6\n") == [
        b'{"field":"ip","window":"all","n":6,"top":[{"value":"10.0.0.1","count":3,"share":1.0}]}\n',
    ]
    shell.commands.reconfigure(msgspec.structs.replace(Config(), control=ControlConfig(max_top_n=5)))
    assert await shell.send(b"TOP ip 6\n") == [b'{"error":"n must be between 1 and 5"}\n']


# -- access ----------------------------------------------------------------------------------

TOKEN = "0123456789abcdef0123"
REFUSED = b'{"error":"auth required: send AUTH <token> first, or use the control Unix socket"}\n'

PRIVILEGED = [
    ("SUBSCRIBE tail", True),
    ("SUBSCRIBE stats tail", True),
    ("SUBSCRIBE tail level>=error", True),
    ("PRIME COUNT 1 10", True),
    ("PRIME LIST 1 10", True),
    ("CANCEL job1", True),
    ("SUBSCRIBE stats anomalies jobs", False),
    ("UNSUBSCRIBE tail", False),
    ("ISPRIME 7", False),
    ("JOBS", False),
    ("STATS", False),
    ("TOP ip", False),
    ("EVENTS", False),
    ("METRICS", False),
    ("PING", False),
    ("HELP", False),
    ("QUIT", False),
    ("AUTH x", False),
    ("PRIME COUNT 1", False),  # not a command: its usage error is the answer
]


@pytest.mark.parametrize(("line", "privileged"), PRIVILEGED)
def test_which_commands_are_privileged(line: str, privileged: bool) -> None:
    assert is_privileged(decode_command(line, LIMITS)) is privileged


def test_an_auth_line_is_redacted_for_logs() -> None:
    assert redacted(f"AUTH {TOKEN}") == "AUTH <redacted>"
    assert redacted(f"auth  {TOKEN} more") == "AUTH <redacted>"
    assert redacted("STATS 5m") == "STATS 5m"
    assert TOKEN not in repr(Auth(TOKEN))


def test_gate_throttles_exactly_at_the_limit_for_sixty_seconds() -> None:
    gate = Gate(TOKEN, failures_per_minute=3)
    assert [gate.authenticate("wrong", t) for t in (0.0, 1.0, 2.0)] == ["auth_failed"] * 3
    # The limit is reached: even the right token is not checked until the first failure is 60 s old.
    assert gate.authenticate(TOKEN, 59.9) == "auth_throttled"
    assert gate.authenticate(TOKEN, 60.0) is None
    assert gate.authenticate("wrong", 60.5) == "auth_failed"  # the one at 0.0 dropped out, 1.0 and 2.0 remain
    assert gate.authenticate(TOKEN, 60.9) == "auth_throttled"  # 1.0 is not yet 60 s old
    assert gate.figures() == msgspec.convert(
        {"auth_ok": 1, "refused": {"auth_failed": 4, "auth_throttled": 2}}, type(gate.figures()))


def test_gate_throttles_per_source_in_a_bounded_table() -> None:
    """A guesser at one address cannot lock the token's holder at another out."""
    gate = Gate(TOKEN, failures_per_minute=2)
    assert [gate.authenticate("wrong", 0.0, "203.0.113.9") for _ in range(2)] == ["auth_failed"] * 2
    assert gate.authenticate(TOKEN, 1.0, "203.0.113.9") == "auth_throttled"
    assert gate.authenticate(TOKEN, 1.0, "10.0.0.2") is None
    for i in range(Gate.MAX_SOURCES + 10):  # many sources: the table stays at its bound
        gate.authenticate("wrong", 2.0, f"s{i}")
    assert len(gate.failures) == Gate.MAX_SOURCES and "203.0.113.9" not in gate.failures


def test_gate_without_a_token_refuses_every_auth() -> None:
    gate = Gate(None, failures_per_minute=1)
    assert [gate.authenticate(x, 0.0) for x in ("", TOKEN, "x")] == ["auth_unconfigured"] * 3
    assert gate.figures().refused == {"auth_unconfigured": 3}


async def test_anonymous_tcp_is_refused_privileged_commands_and_answered_the_rest() -> None:
    shell = Shell(access="anonymous", token=TOKEN)
    assert await shell.send(b"SUBSCRIBE tail\nPRIME COUNT 1 10\nPRIME LIST 1 10\nCANCEL job1\nPING\nISPRIME 7\n") == [
        REFUSED, REFUSED, REFUSED, REFUSED, b'{"pong":true}\n', b'{"n":7,"prime":true}\n',
    ]
    assert shell.hub.subscribers == set() and shell.jobs.running == set() and not shell.transport.closed
    assert shell.commands.gate.figures().refused == {"auth_required": 4}


async def test_auth_with_the_token_allows_privileged_commands() -> None:
    shell = Shell(access="anonymous", token=TOKEN)
    assert await shell.send(f"AUTH {TOKEN}\nSUBSCRIBE tail\n".encode()) == [
        b'{"auth":"ok"}\n', b'{"subscribed":["tail"]}\n',
    ]
    assert shell.conn.access == "token"


async def test_a_wrong_token_answers_and_closes() -> None:
    shell = Shell(access="anonymous", token=TOKEN)
    assert await shell.send(f"AUTH {TOKEN}x\nPING\n".encode()) == [b'{"error":"auth failed"}\n']
    assert shell.transport.closed and shell.conn.access == "anonymous"


async def test_throttled_auth_is_refused_even_with_the_token() -> None:
    first = Shell(access="anonymous", token=TOKEN,
                  config=msgspec.structs.replace(Config(), control=ControlConfig(auth_failures_per_minute=1)))
    assert await first.send(b"AUTH nope\n") == [b'{"error":"auth failed"}\n']
    second = Shell(access="anonymous", commands=first.commands)
    assert await second.send(f"AUTH {TOKEN}\n".encode()) == [
        b'{"error":"auth refused: too many failed AUTHs in the last minute"}\n']
    first.now = 60.0
    third = Shell(access="anonymous", commands=first.commands)
    assert await third.send(f"AUTH {TOKEN}\nCANCEL x\n".encode()) == [
        b'{"auth":"ok"}\n', b'{"error":"no running job \'x\'"}\n']


async def test_auth_without_a_configured_token_says_so() -> None:
    shell = Shell(access="anonymous")
    assert await shell.send(b"AUTH anything\n") == [
        b'{"error":"auth unavailable: the daemon has no control.token_file; use the control Unix socket"}\n']
    assert shell.transport.closed


async def test_a_new_token_on_sighup_applies_to_the_next_auth() -> None:
    shell = Shell(access="anonymous", token=TOKEN)
    shell.commands.reconfigure(Config(), "another-token-of-16+")
    again = Shell(access="anonymous", commands=shell.commands)
    assert await shell.send(f"AUTH {TOKEN}\n".encode()) == [b'{"error":"auth failed"}\n']
    assert await again.send(b"AUTH another-token-of-16+\n") == [b'{"auth":"ok"}\n']
