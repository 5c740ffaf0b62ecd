"""The control protocol as data: a command line is decoded once into a tagged Struct (or a
`CommandError`), and answered with Structs whose field order is the JSON key order on the wire.

Sans-I/O: `decode_command` reads one line; `lines.py` cuts the stream into lines, `commands.py`
answers and `control.py` moves the bytes.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Literal, Protocol

import msgspec

from logtallyd.primes.commands import PrimeCommand, PrimeLimits, decode_prime
from logtallyd.publish.pubsub import CLUSTER_TOPICS, TOPICS
from logtallyd.publish.tailfilter import Predicate, compile_filter
from logtallyd.stats.history import SERIES as HISTORY_SERIES
from logtallyd.stats.history import parse_duration

if TYPE_CHECKING:
    from logtallyd.primes.config import PrimeConfig
    from logtallyd.publish.config import ControlConfig
    from logtallyd.stats.config import StatsConfig


class Config(Protocol):
    """The sections of the daemon's config that the control commands read."""

    @property
    def control(self) -> ControlConfig: ...
    @property
    def stats(self) -> StatsConfig: ...
    @property
    def primes(self) -> PrimeConfig: ...

__all__ = [
    "Alerts", "Auth", "Authorized", "Close", "Cluster", "Command", "CommandError", "CommandLimits", "Error", "EventList", "Events", "Deny", "Grant", "Help",
    "HelpList", "History", "HistoryList", "Join", "Leave", "Metrics", "MetricsText", "Ping", "Pong", "Quit", "Senders",
    "Stats", "Subscribe", "Subscribed", "Top", "TopList", "Unsubscribe", "Unsubscribed",
    "decode_command", "help_text",
]


# -- commands --------------------------------------------------------------------------------

class Ping(msgspec.Struct, frozen=True, tag=True):
    pass


class Help(msgspec.Struct, frozen=True, tag=True):
    pass


class Stats(msgspec.Struct, frozen=True, tag=True):
    window: str
    cluster: bool = False  # the fleet's merged view, not this node's


class Top(msgspec.Struct, frozen=True, tag=True):
    field: str  # lower case; the statistics know which fields they count
    n: int
    window: str
    cluster: bool = False


class Events(msgspec.Struct, frozen=True, tag=True):
    n: int
    cluster: bool = False


class Cluster(msgspec.Struct, frozen=True, tag=True):
    """The fleet's node table."""


class Metrics(msgspec.Struct, frozen=True, tag=True):
    pass


class Senders(msgspec.Struct, frozen=True, tag=True):
    pass


class Alerts(msgspec.Struct, frozen=True, tag=True):
    pass


class History(msgspec.Struct, frozen=True, tag=True):
    series: tuple[str, ...]  # names from `logtallyd.stats.history.SERIES`
    step: int  # seconds, a multiple of 60
    since_s: int  # seconds back from now


class Subscribe(msgspec.Struct, frozen=True, tag=True):
    topics: tuple[str, ...]  # lower case, as given
    interval_s: float
    filters: tuple[str, ...]  # `tail` filter terms, already checked to compile


class Unsubscribe(msgspec.Struct, frozen=True, tag=True):
    topics: tuple[str, ...]  # lower case; empty means all


class Quit(msgspec.Struct, frozen=True, tag=True):
    pass


class Auth(msgspec.Struct, frozen=True, tag=True):
    token: str

    def __repr__(self) -> str:  # a traceback or a debug print must not show the token
        return "Auth(token=<redacted>)"


Command = Ping | Help | Stats | Top | Events | Cluster | Metrics | Senders | Alerts | History | Subscribe | Unsubscribe | Quit | Auth | PrimeCommand


class CommandError(msgspec.Struct, frozen=True):
    """A line that is not a valid command; `message` is what the client is told."""

    message: str


class CommandLimits(msgspec.Struct, frozen=True):
    """What decoding needs from the config: the windows and the `[control]`/`[primes]` bounds."""

    windows: tuple[str, ...]  # "all" first, then `[stats] windows`
    max_command_bytes: int
    max_top_n: int
    min_interval_s: float
    max_interval_s: float
    default_interval_s: float
    default_events: int
    primes: PrimeLimits

    @classmethod
    def from_config(cls, config: Config) -> CommandLimits:
        control, primes = config.control, config.primes
        return cls(
            windows=("all", *config.stats.windows),
            max_command_bytes=control.max_command_bytes,
            max_top_n=control.max_top_n,
            min_interval_s=control.min_interval_s,
            max_interval_s=control.max_interval_s,
            default_interval_s=control.default_interval_s,
            default_events=control.default_events,
            primes=PrimeLimits(primes.max_range, primes.max_list, primes.max_value),
        )


# -- answers (field order is the JSON key order) ----------------------------------------------

class Error(msgspec.Struct, frozen=True):
    error: str


class Pong(msgspec.Struct, frozen=True):
    pong: bool = True


class HelpList(msgspec.Struct, frozen=True):
    commands: dict[str, str]


class TopList(msgspec.Struct, frozen=True):
    field: str
    window: str
    n: int
    top: list[dict[str, Any]]


class EventList(msgspec.Struct, frozen=True):
    events: list[Any]


class HistoryList(msgspec.Struct, frozen=True):
    series: dict[str, list[list[float]]]  # name -> [[start second, value], ...], oldest first
    step: int
    since: int  # first second asked for (rounded down to the step)
    until: int
    approximate: dict[str, str]  # series that are not exact, and their bound


class MetricsText(msgspec.Struct, frozen=True):
    metrics: str


class Subscribed(msgspec.Struct, frozen=True):
    subscribed: list[str]  # every topic the connection now streams, sorted


class Unsubscribed(msgspec.Struct, frozen=True):
    unsubscribed: list[str] | Literal["all"]


class Authorized(msgspec.Struct, frozen=True):
    auth: str = "ok"


# What a handler asks of the connection; the connection owns its subscription and its socket.

class Join(msgspec.Struct, frozen=True):
    """Stream `topics` on this connection (answered with `Subscribed`)."""

    topics: tuple[str, ...]
    interval_s: float
    tail_filter: Predicate | None
    tail_terms: tuple[str, ...]


class Leave(msgspec.Struct, frozen=True):
    """Stop streaming `topics`, all of them when empty (answered with `Unsubscribed`)."""

    topics: tuple[str, ...]


class Close(msgspec.Struct, frozen=True):
    """QUIT: close the connection after the answers before it."""


class Grant(msgspec.Struct, frozen=True):
    """AUTH with the right token: the connection may run privileged commands (answered `Authorized`)."""


class Deny(msgspec.Struct, frozen=True):
    """AUTH refused: send `error`, then close, so each connection gets one guess."""

    error: str


Reply = msgspec.Struct | dict[str, Any]  # one JSON line
Answer = Reply | AsyncIterator[Reply] | Join | Leave | Close | Grant | Deny


def help_text(limits: CommandLimits) -> dict[str, str]:
    return {
        "HELP": "this list",
        "PING": "answers {\"pong\": true}",
        "STATS [window] [cluster]": "totals and rolling statistics; window is all (default) or one of the configured windows; cluster: the fleet's merged view",
        "TOP <field> [n] [window] [cluster]": "top-n of ip, user_agent, path, service, host, status, error, suspicious_ip",
        "EVENTS [n] [cluster]": f"the last n anomaly events (default {limits.default_events}); cluster: the fleet detectors', once each",
        "CLUSTER": "every node of the fleet: last published second, lag, lines contributed, up or down",
        "SUBSCRIBE <topic>... [interval=S] [filter...]": "stream JSON lines: stats, anomalies, tail [level>=error service=api ip=... contains:text], jobs; stats cluster / anomalies cluster: the fleet's",
        "UNSUBSCRIBE [topic...]": "stop streaming (all topics by default)",
        "METRICS": "Prometheus text exposition of the daemon's own metrics",
        "SENDERS": "one row per sender address: seen times, lines, bytes, rate against its baseline, framing, rejects, TLS client",
        "ALERTS": "alerts firing now, and each [[alerts]] route's sent, retried, failed and dropped counts",
        "HISTORY [series,...] [step] [since]": f"per-minute trends kept in the state directory: {', '.join(HISTORY_SERIES)}; step in seconds (a multiple of 60, default 60), since like 6h (default)",
        "PRIME COUNT <lo> <hi>": "count primes in [lo, hi] (long ranges return a job id; progress on topic jobs)",
        "PRIME LIST <lo> <hi>": "the primes in [lo, hi], streamed as JSON lines in chunks",
        "ISPRIME <n>": "deterministic Miller-Rabin below 3.3e24, BPSW probable-prime test beyond",
        "JOBS": "prime jobs and their progress",
        "CANCEL <id>": "stop a prime job",
        "AUTH <token>": "allow the privileged commands (SUBSCRIBE tail, PRIME COUNT/LIST, CANCEL) on this TCP connection",
        "QUIT": "close this connection",
    }


# -- decoding --------------------------------------------------------------------------------

# ASCII only: `str.isdigit` also accepts '²' or '٣', which `int` then refuses (or reads).
_DIGITS = re.compile(r"[0-9]+")
_MAX_DIGITS = 18  # more than any count needs; `int` refuses text of over 4300 digits


def _count(word: str) -> int | None:
    """A non-negative count written in ASCII digits, else None; a longer number than any limit
    reads as 10**18, which every range check refuses just as it would the number itself."""
    if not _DIGITS.fullmatch(word):
        return None
    return int(word) if len(word) <= _MAX_DIGITS else 10**_MAX_DIGITS


def _figure(x: float) -> str:
    """A limit as a person writes it: 3600, not 3600.0."""
    return str(int(x)) if float(x).is_integer() else repr(x)


def _window_error(window: str, limits: CommandLimits) -> str:
    return f"unknown window {window!r}; windows: {', '.join(limits.windows)}"


def _cluster_flag(args: list[str]) -> tuple[list[str], bool]:
    """The arguments without the `cluster` word, and whether it was there."""
    rest = [a for a in args if a.lower() != "cluster"]
    return rest, len(rest) != len(args)


def _stats(args: list[str], limits: CommandLimits) -> Stats | str:
    args, cluster = _cluster_flag(args)
    window = args[0] if args else "all"
    return Stats(window, cluster) if window in limits.windows else _window_error(window, limits)


def _top(args: list[str], limits: CommandLimits) -> Top | str:
    args, cluster = _cluster_flag(args)
    if not args:
        return "usage: TOP <field> [n] [window]"
    n, window = 10, "all"
    for word in args[1:]:  # either order; the last of each kind wins
        count = _count(word)
        if count is not None:
            n = count
        else:
            window = word
    if window not in limits.windows:
        return _window_error(window, limits)
    if not 1 <= n <= limits.max_top_n:
        return f"n must be between 1 and {limits.max_top_n}"
    return Top(args[0].lower(), n, window, cluster)


def _events(args: list[str], limits: CommandLimits) -> Events:
    args, cluster = _cluster_flag(args)
    count = _count(args[0]) if args else None
    return Events(limits.default_events if count is None else count, cluster)


def _interval(word: str, limits: CommandLimits) -> float | str:
    text = word.split("=", 1)[1]
    try:
        interval = float(text) if text.isascii() else None  # float() also reads '٣' as 3
    except ValueError:
        interval = None
    if interval is None:
        return f"bad interval {word!r}"
    if not limits.min_interval_s <= interval <= limits.max_interval_s:
        return (f"interval must be between {_figure(limits.min_interval_s)} "
                f"and {_figure(limits.max_interval_s)} seconds")
    return interval


def _is_filter_term(word: str) -> bool:
    return any(mark in word for mark in "=:<>")


def _subscribe(args: list[str], limits: CommandLimits) -> Subscribe | str:
    args, cluster = _cluster_flag(args)
    topics = [w.lower() for w in args if w.lower() in TOPICS]
    if cluster:
        if any(t not in CLUSTER_TOPICS for t in topics):
            return f"usage: SUBSCRIBE {' | '.join(CLUSTER_TOPICS)} cluster"
        topics = [CLUSTER_TOPICS[t] for t in topics]
    if not topics or any(w.lower() not in TOPICS and not _is_filter_term(w) for w in args):
        return f"usage: SUBSCRIBE <topic>... with topics {', '.join(TOPICS)}"
    interval = limits.default_interval_s
    filters: list[str] = []
    for word in args:
        if word.lower().startswith("interval="):
            checked = _interval(word, limits)
            if isinstance(checked, str):
                return checked
            interval = checked
        elif word.lower() not in TOPICS:
            filters.append(word)
    if filters and isinstance(error := compile_filter(filters), str):
        return error
    return Subscribe(tuple(topics), interval, tuple(filters))


def _unsubscribe(args: list[str], limits: CommandLimits) -> Unsubscribe:
    return Unsubscribe(tuple(w.lower() for w in args))


DEFAULT_HISTORY = ("lines", "errors", "error_rate", "latency_p95")
_MAX_STEP = 86400 * 366
_MAX_SINCE = 86400 * 3660  # the longest `[history] hour_days`


def _history(args: list[str], limits: CommandLimits) -> History | str:
    if len(args) > 3:
        return "usage: HISTORY [series,...] [step] [since]"
    names = tuple(n.lower() for n in args[0].split(",") if n) if args else DEFAULT_HISTORY
    unknown = [n for n in names if n not in HISTORY_SERIES]
    if unknown or not names:
        return f"unknown series {', '.join(unknown)!r}; series: {', '.join(HISTORY_SERIES)}"
    step = _count(args[1]) if len(args) > 1 else 60
    if step is None or step < 60 or step % 60 or step > _MAX_STEP:
        return f"step must be a multiple of 60 seconds, at most {_MAX_STEP}"
    since = parse_duration(args[2]) if len(args) > 2 else 6 * 3600
    if since is None or not 1 <= since <= _MAX_SINCE:
        return f"since must be a duration like 90m, 6h or 7d (seconds if bare), at most {_MAX_SINCE // 86400}d"
    return History(names, step, since)


def _auth(args: list[str], limits: CommandLimits) -> Auth | str:
    return Auth(args[0]) if len(args) == 1 else "usage: AUTH <token>"


_VERBS: dict[str, Callable[[list[str], CommandLimits], Command | str]] = {
    "PING": lambda args, limits: Ping(),
    "HELP": lambda args, limits: Help(),
    "STATS": _stats,
    "TOP": _top,
    "EVENTS": _events,
    "CLUSTER": lambda args, limits: Cluster(),
    "METRICS": lambda args, limits: Metrics(),
    "SENDERS": lambda args, limits: Senders(),
    "ALERTS": lambda args, limits: Alerts(),
    "HISTORY": _history,
    "SUBSCRIBE": _subscribe,
    "UNSUBSCRIBE": _unsubscribe,
    "QUIT": lambda args, limits: Quit(),
    "AUTH": _auth,
}


def decode_command(line: str, limits: CommandLimits) -> Command | CommandError:
    """One command line (verb case-insensitive, words split on whitespace) as a command."""
    words = line.split()
    verb, args = (words[0].upper(), words[1:]) if words else ("", [])
    if verb == "PRIME" and args:
        verb, args = f"PRIME {args[0].upper()}", args[1:]
    decode = _VERBS.get(verb)
    command = decode(args, limits) if decode is not None else decode_prime(verb, args, limits.primes)
    if command is None:
        return CommandError(f"unknown command {verb!r}; HELP lists the commands")
    return CommandError(command) if isinstance(command, str) else command
