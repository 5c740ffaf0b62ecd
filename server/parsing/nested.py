"""Syslog messages whose MSG is itself a JSON object or an access-log line (apps and web servers
logging through syslog): the inner line is parsed too and fills what the syslog layer lacks.
"""
# The syslog layer keeps its own ts, host and service (APP-NAME/TAG); the inner layer adds
# `http`, and service/ts/host only where the outer has none. The level is the worse of the two:
# an nginx 5xx or `{"level":"error"}` logged at `user.info` is still an error. For JSON the
# inner `message`/`msg` replaces the MSG (the JSON text is not kept); an access line stays the
# message. `inner_format` names the inner layer. An inner line that does not parse changes
# nothing.
from __future__ import annotations

import msgspec

from logtallyd.records import Record
from logtallyd import native
from logtallyd.parsing.jsonlog import parse_json

parse_access = native.load("logtallyd.parsing.access").parse_access  # compiled when built


def nest(outer: Record, allowed: frozenset[str]) -> Record:
    msg = outer.message
    c = msg[:1]
    if c == "{":
        if "json" not in allowed:
            return outer
        inner = parse_json(msg)
        if not isinstance(inner, Record):
            return outer
    elif c and (c.isalnum() or c == ":" or c == "[") and "access" in allowed and " [" in msg:
        inner = parse_access(msg)
        if inner is None:
            return outer
    else:
        return outer
    # The worse (lower) severity wins; an inner layer without a level keeps the outer one.
    use_inner = inner.severity is not None and (outer.severity is None or inner.severity < outer.severity)
    return msgspec.structs.replace(
        outer,
        message=inner.message,
        ts=outer.ts if outer.ts is not None else inner.ts,
        host=outer.host if outer.host is not None else inner.host,
        service=outer.service if outer.service is not None else inner.service,
        level=inner.level if use_inner else outer.level,
        severity=inner.severity if use_inner else outer.severity,
        http=inner.http,
        inner_format=inner.format,
    )
