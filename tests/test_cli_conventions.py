"""CLI conventions of `logtally` and `logtallyd`: --version, help text on every option, global options
before or after the sub-command, completion scripts run by real bash, zsh and fish, the man page."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from logtally import PROG
from logtally.cli import build_parser
from tests.conftest import ROOT, require_tool, send_tcp

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run(*args: str, module: str = "logtally.cli") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=60, env=ENV, cwd=ROOT)


def installed_version() -> str:
    try:
        return version("logtally")
    except PackageNotFoundError:
        return "0+unknown"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


# -- version -----------------------------------------------------------------------------------

def test_version_of_the_client_and_the_daemon() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout == f"logtally {installed_version()}\n"
    out = run("--version", module="logtallyd")
    assert out.returncode == 0 and out.stdout == f"logtallyd {installed_version()}\n"


# -- help ----------------------------------------------------------------------------------------

def test_every_option_of_every_command_has_help_text() -> None:
    parser = build_parser()
    commands = subcommands(parser)
    assert set(commands) == {"send", "senders", "stats", "top", "watch", "events", "alerts", "history", "subscribe", "tail", "prime", "completion", "cluster"}
    missing = []
    for name, p in [(PROG, parser), *commands.items()]:
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    # Every sub-command takes the global options, so its --help lists them.
    for name in commands:
        text = run(name, "--help").stdout
        assert all(option in text for option in ("--control ADDRESS", "--token-file FILE", "--json", "--color")), name


# -- global options before or after the command ------------------------------------------------------

def test_global_options_before_or_after_the_command(start_server) -> None:
    server = start_server()
    send_tcp(server.address("tcp"), b"one\ntwo\nthree\n")
    server.wait_received(3)
    control = server.addresses["control"]
    for args in (["--control", control, "--json", "stats"],
                 ["stats", "--control", control, "--json"],
                 ["--json", "stats", "--control", control],
                 ["--control", control, "stats", "--window", "all", "--json"]):
        out = run(*args)
        assert out.returncode == 0, (args, out.stderr)
        assert json.loads(out.stdout)["received"] == 3, args
    for args in (["top", "host", "--json", "--control", control], ["--json", "--control", control, "top", "host"]):
        out = run(*args)
        assert json.loads(out.stdout) == {"field": "host", "window": "all", "n": 10, "top": []}, args
    # Given in both places, the one after the command wins.
    out = run("--control", "127.0.0.1:1", "stats", "--control", control, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["received"] == 3
    out = run("--control", control, "stats", "--control", "127.0.0.1:1")
    assert out.returncode == 1
    assert out.stderr.startswith("logtally: cannot reach logtallyd control port at 127.0.0.1:1")


# -- completion ---------------------------------------------------------------------------------------

def test_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    bash = require_tool("bash")
    out = run("completion", "bash")
    assert out.returncode == 0
    script = tmp_path / "logtally.bash"
    script.write_text(out.stdout)

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        probe = (f'source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; '
                 f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; '
                 f'_shtab_logtally logtally "{words[-1]}" "{words[-2]}"; printf "%s\\n" "${{COMPREPLY[@]}}"')
        result = subprocess.run([bash, "-c", probe], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return sorted(result.stdout.split())

    assert complete("logtally", "s") == ["send", "senders", "stats", "subscribe"]
    assert complete("logtally", "stats", "--c") == ["--cluster", "--color", "--control"]
    assert complete("logtally", "completion", "") == ["bash", "fish", "zsh"]
    assert complete("logtally", "top", "suspicious") == ["suspicious_ip"]


def test_fish_completion_completes_commands_options_and_choices(tmp_path: Path) -> None:
    fish = require_tool("fish")
    out = run("completion", "fish")
    assert out.returncode == 0
    script = tmp_path / "logtally.fish"
    script.write_text(out.stdout)

    def complete(line: str) -> list[str]:
        result = subprocess.run([fish, "--no-config", "-c", f"source {script}; complete -C '{line}'"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return sorted(entry.split("\t")[0] for entry in result.stdout.splitlines())

    assert complete("logtally st") == ["stats"]
    assert complete("logtally tail --") == ["--color", "--contains", "--control", "--format", "--help",
                                           "--host", "--ip", "--json", "--level", "--service", "--token-file"]
    assert complete("logtally tail --format ") == ["access", "app", "json", "raw", "rfc3164", "rfc5424"]
    assert complete("logtally completion ") == ["bash", "fish", "zsh"]


def test_zsh_completion_is_valid_zsh_naming_every_command(tmp_path: Path) -> None:
    zsh = require_tool("zsh")
    out = run("completion", "zsh")
    assert out.returncode == 0 and out.stdout.startswith("#compdef logtally\n")
    script = tmp_path / "_logtally"
    script.write_text(out.stdout)
    check = subprocess.run([zsh, "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    # Loaded into zsh, the script defines the completion function compdef names.
    loaded = subprocess.run([zsh, "-f", "-c", f"source {script} 2>/dev/null; whence -w _shtab_logtally"],
                            capture_output=True, text=True, timeout=30)
    assert loaded.stdout.strip() == "_shtab_logtally: function"
    for name, p in subcommands(build_parser()).items():
        assert f"\n    {name}:'" in out.stdout, name
        for action in p._actions:
            for flag in action.option_strings:
                assert flag in out.stdout, (name, flag)


def test_completion_of_an_unknown_shell_is_refused() -> None:
    out = run("completion", "tcsh")
    assert out.returncode == 2 and "invalid choice: 'tcsh'" in out.stderr


# -- man page -------------------------------------------------------------------------------------------

def test_man_page_is_generated_from_the_parser_and_names_every_command_and_option(tmp_path: Path) -> None:
    out = run(str(tmp_path / "man"), module="logtally.manpage")
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "man" / "logtally.1").read_text()
    assert page.startswith('.TH LOGTALLY "1" ')
    assert f'"logtally {installed_version()}"' in page.splitlines()[0]
    for name, p in subcommands(build_parser()).items():
        assert f"\\fBlogtally\\fR \\fI\\,{name}\\/\\fR" in page, name  # the command list
        assert f".SH COMMAND \\fI\\,'logtally {name}'\\/\\fR" in page, name  # its own section
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue  # argparse-manpage leaves -h out of every section
            for flag in action.option_strings:
                assert flag.replace("-", "\\-") in page, (name, flag)
    man = shutil.which("man")
    if man:  # when man is there, the page also renders
        shown = subprocess.run([man, "-l", str(tmp_path / "man" / "logtally.1")], capture_output=True, text=True,
                               timeout=30, env={**os.environ, "MANPAGER": "cat", "COLUMNS": "100"})
        assert "logtally - ship logs to logtallyd and query it" in shown.stdout
