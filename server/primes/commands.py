"""The prime verbs of the control protocol: PRIME COUNT/LIST, ISPRIME, JOBS and CANCEL.

`decode_prime` turns a verb's words into a command Struct (or an error string) within the job
limits; `PrimeCommands` answers a command from the `JobManager` without touching a connection.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import msgspec

from logtallyd.primes.jobs import JobRejected
from logtallyd.primes.numbers import parse_number, parse_range

if TYPE_CHECKING:
    from logtallyd.primes.jobs import JobManager

__all__ = [
    "Cancel", "Cancelled", "IsPrime", "JobList", "JobRunning", "Jobs", "ListDone", "PrimeAnswer",
    "PrimeChunk", "PrimeCommand", "PrimeCommands", "PrimeCount", "PrimeLimits", "PrimeList", "Refused",
    "PRIME_VERBS", "decode_prime",
]


# -- commands ------------------------------------------------------------------------------

class PrimeCount(msgspec.Struct, frozen=True, tag=True):
    lo: int
    hi: int


class PrimeList(msgspec.Struct, frozen=True, tag=True):
    lo: int
    hi: int


class IsPrime(msgspec.Struct, frozen=True, tag=True):
    n: int


class Jobs(msgspec.Struct, frozen=True, tag=True):
    pass


class Cancel(msgspec.Struct, frozen=True, tag=True):
    id: str


PrimeCommand = PrimeCount | PrimeList | IsPrime | Jobs | Cancel


class PrimeLimits(msgspec.Struct, frozen=True):
    """The `[primes]` bounds a command must fit before a job is started."""

    max_range: int  # hi - lo for COUNT
    max_list: int  # hi - lo for LIST
    max_value: int  # the largest hi


# -- answers (key order is the wire format) -------------------------------------------------

class JobRunning(msgspec.Struct, frozen=True):
    """PRIME COUNT that outlasts `answer_within_s`: the id to follow on topic `jobs`."""

    job: str
    state: str
    lo: int
    hi: int


class PrimeChunk(msgspec.Struct, frozen=True):
    primes: list[int]


class ListDone(msgspec.Struct, frozen=True):
    done: bool
    lo: int
    hi: int
    count: int


class JobList(msgspec.Struct, frozen=True):
    jobs: list[dict[str, Any]]


class Cancelled(msgspec.Struct, frozen=True):
    cancelled: str


class Refused(msgspec.Struct, frozen=True):
    """The job service said no (too many jobs, no such job); sent as `{"error": ...}`."""

    error: str


PrimeAnswer = JobRunning | JobList | Cancelled | Refused | dict[str, Any] | AsyncIterator[PrimeChunk | ListDone]


# -- decoding --------------------------------------------------------------------------------

def _count(args: list[str], limits: PrimeLimits) -> PrimeCount | str:
    if len(args) != 2:
        return "usage: PRIME COUNT <lo> <hi>"
    bounds = parse_range(args[0], args[1], limits.max_range, limits.max_value)
    return bounds if isinstance(bounds, str) else PrimeCount(*bounds)


def _list(args: list[str], limits: PrimeLimits) -> PrimeList | str:
    if len(args) != 2:
        return "usage: PRIME LIST <lo> <hi>"
    bounds = parse_range(args[0], args[1], limits.max_list, limits.max_value)
    return bounds if isinstance(bounds, str) else PrimeList(*bounds)


def _isprime(args: list[str], limits: PrimeLimits) -> IsPrime | str:
    if len(args) != 1:
        return "usage: ISPRIME <n>"
    n = parse_number(args[0])
    return n if isinstance(n, str) else IsPrime(n)


def _jobs(args: list[str], limits: PrimeLimits) -> Jobs:
    return Jobs()


def _cancel(args: list[str], limits: PrimeLimits) -> Cancel | str:
    return Cancel(args[0]) if len(args) == 1 else "usage: CANCEL <id>"


PRIME_VERBS: dict[str, Callable[[list[str], PrimeLimits], PrimeCommand | str]] = {
    "PRIME COUNT": _count,
    "PRIME LIST": _list,
    "ISPRIME": _isprime,
    "JOBS": _jobs,
    "CANCEL": _cancel,
}


def decode_prime(verb: str, args: list[str], limits: PrimeLimits) -> PrimeCommand | str | None:
    """The command for `verb` (upper case, `PRIME X` as two words) and its words; None if the
    verb is not a prime verb, a string if the words do not make a valid command."""
    decode = PRIME_VERBS.get(verb)
    return None if decode is None else decode(args, limits)


# -- answering -------------------------------------------------------------------------------

class PrimeCommands:
    """Answers prime commands from the job service; the job limits and `answer_within_s` are
    the service's current `[primes]` section, so SIGHUP applies to the next command."""

    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs

    async def answer(self, command: PrimeCommand) -> PrimeAnswer:
        match command:
            case PrimeCount(lo, hi):
                try:
                    job_id = self.jobs.start_count(lo, hi)
                except JobRejected as exc:
                    return Refused(str(exc))
                # Short jobs answer at once; long ones return the id and report on topic `jobs`.
                result = await self.jobs.wait(job_id, self.jobs.config.answer_within_s)
                return result if result is not None else JobRunning(job_id, "running", lo, hi)
            case PrimeList(lo, hi):
                error = self.jobs.check("list", lo, hi)
                return Refused(error) if error else self._stream(lo, hi)
            case IsPrime(n):
                return await self.jobs.isprime(n)
            case Jobs():
                return JobList(self.jobs.jobs())
            case Cancel(job_id):
                return Cancelled(job_id) if self.jobs.cancel(job_id) else Refused(f"no running job {job_id!r}")

    async def _stream(self, lo: int, hi: int) -> AsyncIterator[PrimeChunk | ListDone]:
        count = 0
        # aclosing: a client that goes away must end the job now, not when GC finds it.
        async with contextlib.aclosing(self.jobs.list_primes(lo, hi)) as chunks:
            async for chunk in chunks:
                count += len(chunk)
                yield PrimeChunk(chunk)
        yield ListDone(True, lo, hi, count)
