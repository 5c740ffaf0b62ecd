"""`[[alerts]]`: one route per block, from which events to where, and how hard to try."""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["AlertRoute", "RouteKind", "Severity", "SEVERITIES", "check_routes"]

RouteKind = Literal["webhook", "slack", "alertmanager", "exec"]
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")  # lowest first

_NAME = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
_LABEL = Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,63}$")]
_ENV = Annotated[str, msgspec.Meta(pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")]


class AlertRoute(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One `[[alerts]]` block. Secrets are named (an environment variable or a file), never written."""

    name: _NAME
    kind: RouteKind
    url: str = ""  # webhook, slack, alertmanager (its base URL: /api/v2/alerts is appended)
    url_env: _ENV = ""  # instead of `url`, when the URL itself is a secret (a Slack webhook)
    command: list[str] = []  # exec: argv, run without a shell
    token_env: _ENV = ""  # `Authorization: Bearer <token>` from this variable ...
    token_file: str = ""  # ... or from the first line of this file
    header_env: dict[str, str] = {}  # header name -> variable holding its value
    kinds: list[str] = []  # event kinds routed ("error_spike", ...); empty = all
    services: list[str] = []  # empty = all; an event without a service passes only when empty
    hosts: list[str] = []
    min_severity: Severity = "info"
    group_by: list[_LABEL] = msgspec.field(default_factory=lambda: ["kind", "key"])
    repeat_interval_s: Annotated[float, msgspec.Meta(ge=0, le=604800)] = 3600.0
    send_resolved: bool = True
    resolve_after_s: Annotated[float, msgspec.Meta(ge=1, le=604800)] = 300.0
    timeout_s: Annotated[float, msgspec.Meta(ge=0.1, le=300)] = 10.0
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5
    backoff_initial_s: Annotated[float, msgspec.Meta(ge=0.01, le=3600)] = 1.0
    backoff_max_s: Annotated[float, msgspec.Meta(ge=0.01, le=86400)] = 60.0
    queue_size: Annotated[int, msgspec.Meta(ge=1, le=100000)] = 1000
    max_active: Annotated[int, msgspec.Meta(ge=1, le=1000000)] = 10000
    dead_letter: str = ""  # JSON lines of dropped and failed notifications; "" = none
    dead_letter_max_bytes: Annotated[int, msgspec.Meta(ge=0, le=1099511627776)] = 67108864


def check_routes(routes: list[AlertRoute]) -> str | None:
    """The checks that read two keys of a route: the first problem, naming the key."""
    names: set[str] = set()
    for i, route in enumerate(routes):
        where = f"alerts[{i}]"
        if route.name in names:
            return f"{where}.name must be unique (got {route.name!r})"
        names.add(route.name)
        if route.kind == "exec":
            if not route.command:
                return f"{where}.command is needed for kind = \"exec\""
        elif bool(route.url) == bool(route.url_env):
            return f"{where} needs exactly one of url and url_env for kind = {route.kind!r}"
        elif route.url and not route.url.startswith(("http://", "https://")):
            return f"{where}.url must start with http:// or https://"
        if route.token_env and route.token_file:
            return f"{where}: token_env and token_file exclude each other"
        if route.backoff_initial_s > route.backoff_max_s:
            return f"{where}.backoff_initial_s must be <= backoff_max_s"
        if not route.group_by:
            return f"{where}.group_by must name at least one label"
    return None
