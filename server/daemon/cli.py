"""`logtallyd`: run the daemon, or look at logs the way it would (parse, analyze, validate)."""
from __future__ import annotations

import argparse
import sys

import msgspec
import structlog

from logtallyd.daemon.config import Config, ConfigError, check_config, load_config, split_address
from logtallyd.daemon.shipped import UNITS, shipped_text

log = structlog.get_logger()

USAGE = """\
logtallyd [--config FILE] [--tcp HOST:PORT] [--udp HOST:PORT] [--control HOST:PORT] [--http HOST:PORT]   run the daemon
logtallyd --print-config | --print-unit UNIT   the shipped default config, a shipped systemd unit
logtallyd parse [--format F] [--group-lines N]  read lines on stdin, print how each one is parsed (JSON)
logtallyd analyze PATH... [--json] [--workers N] [--events]   statistics for files, .gz and directories
logtallyd validate PATH...            per file: lines per format, first rejected lines with reasons
"""


def main(argv: list[str] | None = None) -> int:
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:  # Ctrl-C before the daemon's own handler is installed, or in a file tool
        print("interrupted", file=sys.stderr)
        return 130


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "parse":
        from logtallyd.offline.parse import run_parse
        from logtallyd.stats.grouping import group_templates
        from logtallyd.stats.templates import record_template

        # The same masks the workers key `TOP error` by, and the same grouping `TOP error`
        # applies to them, over the lines read.
        return run_parse(argv[1:], sys.stdin, sys.stdout, template_of=record_template, group=group_templates)
    if argv and argv[0] == "analyze":
        from logtallyd.offline.analyze import run_analyze

        return run_analyze(argv[1:])
    if argv and argv[0] == "validate":
        from logtallyd.offline.analyze import run_validate

        return run_validate(argv[1:])
    if argv and argv[0] == "run":
        argv = argv[1:]
    return run_daemon(argv)


def run_daemon(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="logtallyd", usage=USAGE)
    parser.add_argument("--version", action=_PrintVersion, nargs=0, help="print the version and exit")
    parser.add_argument("--config", help="config.toml (default: built-in defaults)")
    parser.add_argument("--tcp", help="ingest TCP HOST:PORT (port 0 = ephemeral, '' = off)")
    parser.add_argument("--udp", help="ingest UDP HOST:PORT (port 0 = ephemeral, '' = off)")
    parser.add_argument("--control", help="control HOST:PORT (port 0 = ephemeral); off loopback it needs "
                                          "[control] token_file")
    parser.add_argument("--http", help="HTTP API HOST:PORT (port 0 = ephemeral, '' = off); off loopback it needs "
                                       "[http] token_file")
    parser.add_argument("--nats", help="NATS server URL(s) of the fleet's JetStream ([cluster] nats)")
    parser.add_argument("--node", help="this node's name in the fleet ([cluster] node)")
    parser.add_argument("--nats-ingest", metavar="SUBJECT", action="append", default=[],
                        help="also count lines published on SUBJECT (adds to [sources.nats] subjects; repeatable)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the shipped, commented default config.toml and exit")
    parser.add_argument("--print-unit", metavar="UNIT", choices=UNITS,
                        help=f"print a shipped systemd unit and exit ({', '.join(UNITS)})")
    args = parser.parse_args(argv)
    if args.print_config or args.print_unit:
        sys.stdout.write(shipped_text(args.print_unit or "config.toml"))
        return 0
    try:
        config = apply_overrides(load_config(args.config), args.tcp, args.udp, args.control, args.http,
                                 nats=args.nats, node=args.node, subjects=args.nats_ingest)
        from logtallyd.daemon.tokenfile import load_token

        load_token(config.control)  # an unusable token file stops the start here, with its key named
    except ConfigError as exc:
        print(f"logtallyd: {exc}", file=sys.stderr)
        return 2
    from logtallyd.daemon.logsetup import configure_logging

    configure_logging(config.log)
    import uvloop

    from logtallyd.daemon.app import serve

    pinned = {name for name in ("tcp", "udp", "control", "http") if getattr(args, name) is not None}
    try:
        return uvloop.run(serve(config, args.config, pinned,
                                lambda c: apply_nats_overrides(c, args.nats, args.node, args.nats_ingest)))
    except OSError as exc:  # e.g. the port is taken
        log.error("start_failed", error=str(exc))
        return 1


class _PrintVersion(argparse.Action):
    """`--version`, with the version looked up only when asked: importlib.metadata takes some
    15 ms to import, which every start of the daemon would pay."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"logtallyd {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("logtally")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def apply_nats_overrides(config: Config, nats: str | None, node: str | None, subjects: list[str]) -> Config:
    """`--nats`, `--node` and `--nats-ingest` over `[cluster]` and `[sources.nats]`."""
    changes: dict[str, str] = {}
    if nats is not None:
        changes["nats"] = nats
    if node is not None:
        changes["node"] = node
    if changes:
        try:  # through the Struct, so `--node` meets the same pattern as `[cluster] node`
            cluster = msgspec.convert({**msgspec.to_builtins(config.cluster), **changes}, type(config.cluster))
        except msgspec.ValidationError as exc:
            raise ConfigError(f"--nats/--node: {exc}") from None
        config = msgspec.structs.replace(config, cluster=cluster)
    if subjects:
        source = config.sources.nats
        source = msgspec.structs.replace(source, subjects=[*source.subjects, *subjects])
        config = msgspec.structs.replace(config, sources=msgspec.structs.replace(config.sources, nats=source))
    return config


def apply_overrides(config: Config, tcp: str | None, udp: str | None, control: str | None,
                    http: str | None = None, nats: str | None = None, node: str | None = None,
                    subjects: list[str] | None = None) -> Config:
    """Command-line listen addresses and cluster options win over the file."""
    config = apply_nats_overrides(config, nats, node, subjects or [])
    for value in (tcp, udp, control, http):
        if value:
            try:
                split_address(value)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    ingest = config.ingest
    if tcp is not None:
        ingest = msgspec.structs.replace(ingest, tcp=tcp)
    if udp is not None:
        ingest = msgspec.structs.replace(ingest, udp=udp)
    config = msgspec.structs.replace(config, ingest=ingest)
    if control is not None:
        config = msgspec.structs.replace(config, control=msgspec.structs.replace(config.control, listen=control))
    if http is not None:
        config = msgspec.structs.replace(config, http=msgspec.structs.replace(config.http, listen=http))
    problem = check_config(config)  # again: `--control 0.0.0.0:5141` must meet the same checks as the file
    if problem:
        raise ConfigError(problem)
    return config


if __name__ == "__main__":
    sys.exit(main())
