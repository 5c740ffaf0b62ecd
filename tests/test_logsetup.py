"""Log setup, checked in fresh subprocesses the way the daemon starts: stdout a pipe, a file, or a TTY."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest

from logtallyd.daemon.logsetup import LogConfig

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import logging, sys, structlog
from logtallyd.daemon.logsetup import LogConfig, configure_logging
as_json = configure_logging(LogConfig(level=sys.argv[1], format=sys.argv[2]))
log = structlog.get_logger()
log.debug("hidden_debug")
log.info("listening", tcp="127.0.0.1:5140", udp="127.0.0.1:5140")
log.warning("line_rejected", reason="oversize", peer="10.0.0.1:4444")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("batch_failed")
logging.getLogger("asyncio").error("Task exception was never retrieved %s", "x")
logging.getLogger("asyncio").debug("stdlib debug hidden")
"""


def run(level: str = "info", fmt: str = "auto", **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("JOURNAL_STREAM", None)
    env.update(kwargs.pop("env", {}))  # type: ignore[arg-type]
    return subprocess.run([sys.executable, "-c", SCRIPT, level, fmt], env=env, check=True, timeout=30, **kwargs)  # type: ignore[call-overload]


def test_pipe_gets_one_json_object_per_line() -> None:
    out = run(stdout=subprocess.PIPE).stdout.decode()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == [
        "listening", "line_rejected", "batch_failed", "Task exception was never retrieved x"
    ]
    assert [e["level"] for e in events] == ["info", "warning", "error", "error"]
    assert events[0]["tcp"] == "127.0.0.1:5140"
    assert "ZeroDivisionError" in events[2]["exception"]
    for event in events:
        stamp = datetime.fromisoformat(event["timestamp"])
        assert stamp.tzinfo is not None and stamp.utcoffset() == timezone.utc.utcoffset(None)
        assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 60


def test_level_filter_applies_to_both_loggers() -> None:
    out = run(level="debug", stdout=subprocess.PIPE).stdout.decode()
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[0] == "hidden_debug" and events[-1] == "stdlib debug hidden"
    out = run(level="error", stdout=subprocess.PIPE).stdout.decode()
    assert [json.loads(line)["event"] for line in out.splitlines()] == [
        "batch_failed", "Task exception was never retrieved x"
    ]


def test_tty_gets_the_console_renderer() -> None:
    master, slave = pty.openpty()
    try:
        run(stdout=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once the slave side is closed and drained
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    text = out.decode()
    assert "listening" in text and "tcp" in text and "127.0.0.1:5140" in text
    assert not text.lstrip().startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_format_can_be_forced_to_json() -> None:
    master, slave = pty.openpty()
    try:
        run(fmt="json", stdout=slave)
        os.close(slave)
        first = os.read(master, 65536).decode().splitlines()[0]
    finally:
        os.close(master)
    assert json.loads(first)["event"] == "listening"


def test_journal_stream_gets_priority_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "journal.out"
    with open(path, "wb") as out:
        st = os.fstat(out.fileno())
        run(stdout=out, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    lines = path.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<6>", "<4>", "<3>", "<3>"]
    assert json.loads(lines[0][3:])["event"] == "listening"


def test_journal_stream_of_another_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "plain.out"
    with open(path, "wb") as out:
        run(stdout=out, env={"JOURNAL_STREAM": "1:2"})
    assert json.loads(path.read_text().splitlines()[0])["event"] == "listening"


def test_config_rejects_unknown_level_and_keys() -> None:
    with pytest.raises(msgspec.ValidationError, match="level"):
        msgspec.convert({"level": "loud"}, LogConfig)
    with pytest.raises(msgspec.ValidationError, match="colour"):
        msgspec.convert({"colour": True}, LogConfig)
