"""Who may do what on the control port: which commands are privileged, the `AUTH` token check and
the limit on failed AUTHs. Sans-I/O: the connection shell hands in its access and the clock.
"""
from __future__ import annotations

import collections
import hmac
from typing import Literal

import msgspec

from logtallyd.primes.commands import Cancel, PrimeCount, PrimeList
from logtallyd.publish.protocol import Command, CommandError, Subscribe

__all__ = ["Access", "AccessFigures", "Gate", "Refusal", "is_privileged", "redacted"]

# "unix": the Unix socket, whose file mode and group decide who connects; "token": a TCP
# connection that sent the right `AUTH`; "anonymous": any other TCP connection.
Access = Literal["unix", "token", "anonymous"]
# Why a command or an AUTH was refused; the keys of STATS `control.refused`.
Refusal = Literal["auth_required", "auth_failed", "auth_throttled", "auth_unconfigured"]

WINDOW_S = 60.0  # `auth_failures_per_minute` counts failures in this sliding window


def is_privileged(command: Command | CommandError) -> bool:
    """Commands that read every ingested line or start or stop work on the worker pool."""
    match command:
        case Subscribe(topics):
            return "tail" in topics
        case PrimeCount() | PrimeList() | Cancel():
            return True
        case _:
            return False


def redacted(line: str) -> str:
    """A command line fit for a log: an AUTH line's token is never written anywhere."""
    words = line.split(None, 1)
    return "AUTH <redacted>" if words and words[0].upper() == "AUTH" else line


class AccessFigures(msgspec.Struct, frozen=True):
    auth_ok: int
    refused: dict[str, int]  # by `Refusal`, only the reasons that happened


class Gate:
    """Checks AUTH tokens in constant time and refuses AUTH unchecked from a source address once
    `failures_per_minute` of its failures fall in the last 60 s, so the token cannot be guessed
    online at any useful rate. Per source, so that a remote guesser cannot lock the token's
    holders out; the table of sources is bounded (the least recently failed are forgotten)."""

    MAX_SOURCES = 4096

    def __init__(self, token: str | None, failures_per_minute: int) -> None:
        self.token = token
        self.per_minute = failures_per_minute
        self.failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self.auth_ok = 0
        self.refused: dict[Refusal, int] = {}

    def reconfigure(self, token: str | None, failures_per_minute: int) -> None:
        self.token = token
        self.per_minute = failures_per_minute
        self.failures = collections.OrderedDict(
            (source, collections.deque(times, maxlen=failures_per_minute)) for source, times in self.failures.items())

    def authenticate(self, given: str, now: float, source: str = "") -> Refusal | None:
        """None when `given` is the token, else why it is refused (and counted)."""
        if self.token is None:
            return self.refuse("auth_unconfigured")
        times = self.failures.get(source)
        if times is not None and len(times) == times.maxlen and now - times[0] < WINDOW_S:
            return self.refuse("auth_throttled")
        # compare_digest: the answer takes as long however much of the token was right.
        if hmac.compare_digest(given.encode(), self.token.encode()):
            self.auth_ok += 1
            return None
        if times is None:
            times = self.failures[source] = collections.deque(maxlen=self.per_minute)
            if len(self.failures) > self.MAX_SOURCES:
                self.failures.popitem(last=False)
        else:
            self.failures.move_to_end(source)
        times.append(now)
        return self.refuse("auth_failed")

    def refuse(self, reason: Refusal) -> Refusal:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        return reason

    def figures(self) -> AccessFigures:
        return AccessFigures(self.auth_ok, dict(sorted(self.refused.items())))
