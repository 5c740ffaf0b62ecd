"""`prime`: count, list and test primes on the server's worker pool, with progress."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from logtally import PROG, render
from logtally.control import Control, ControlError, ask


async def do_prime(args: argparse.Namespace) -> int:
    action, words = args.action, args.args
    need = {"count": 2, "list": 2, "is": 1, "jobs": 0, "cancel": 1}[action]
    if len(words) != need:
        raise ControlError(f"{PROG} prime {action} takes {need} argument(s)")
    if action == "count":
        return await _count(args.control, args.token_file, words[0], words[1], args.json)
    if action == "list":
        return await _list(args.control, args.token_file, words[0], words[1], args.json)
    if action == "is":
        answer = await ask(args.control, f"ISPRIME {words[0]}")
        if args.json:
            print(json.dumps(answer))
        else:
            verdict = "prime" if answer["prime"] else "composite"
            print(f"{answer['n']} is {verdict} ({answer['certainty']}, {answer['method']})")
        return 0
    if action == "jobs":
        answer = await ask(args.control, "JOBS")
        if args.json:
            print(json.dumps(answer))
        else:
            print(render.items_table(answer["jobs"]))
        return 0
    answer = await ask(args.control, f"CANCEL {words[0]}", args.token_file)
    print(json.dumps(answer) if args.json else f"cancelled {answer['cancelled']}")
    return 0


async def _count(address: str, token_file: str | None, lo: str, hi: str, raw: bool) -> int:
    control = await Control.connect(address, token_file)
    tty = sys.stderr.isatty() and not raw
    try:
        await control.ask("SUBSCRIBE jobs")  # first, so no progress message is missed
        await control.send(f"PRIME COUNT {lo} {hi}")
        job_id = None
        async for message in control.stream():
            if "error" in message:
                raise ControlError(message["error"])
            if job_id is None and "job" in message:
                job_id = message["job"]
                continue
            if job_id is None and "count" in message:
                return _print_result(message, raw)
            if message.get("id") != job_id:
                continue
            kind = message.get("type")
            if kind == "job_progress" and tty:
                _bar(message)
            elif kind == "job_done":
                if tty:
                    sys.stderr.write("\r\x1b[K")
                return _print_result(message, raw)
            elif kind in ("job_cancelled", "job_failed"):
                if tty:
                    sys.stderr.write("\n")
                raise ControlError(f"job {job_id} {kind.split('_', 1)[1]}: {message.get('error', '')}")
    finally:
        await control.close()
    return 1


def _bar(message: dict[str, Any]) -> None:
    percent = float(message.get("percent") or 0)
    filled = int(percent / 100 * 40)
    eta = message.get("eta_s")
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (40 - filled)}] {percent:5.1f}%  primes so far {message.get('primes', 0):,}"
        + (f"  eta {eta:.0f}s" if eta is not None else "")
    )
    sys.stderr.flush()


def _print_result(result: dict[str, Any], raw: bool) -> int:
    result = {k: v for k, v in result.items() if k != "type"}
    if raw:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}  {value}")
    return 0


async def _list(address: str, token_file: str | None, lo: str, hi: str, raw: bool) -> int:
    control = await Control.connect(address, token_file)
    try:
        await control.send(f"PRIME LIST {lo} {hi}")
        async for message in control.stream():
            if "error" in message:
                raise ControlError(message["error"])
            if message.get("done"):
                if raw:
                    print(json.dumps(message))
                return 0
            if raw:
                print(json.dumps(message))
            else:
                sys.stdout.write("".join(f"{p}\n" for p in message["primes"]))
    finally:
        await control.close()
    return 1
