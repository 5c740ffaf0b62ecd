"""rsyslog's omfwd forwarding to logtallyd over TCP, in both RFC 6587 framings, unmodified."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, require_tool

CONF = """\
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{target}" protocol="tcp"
         TCP_Framing="{framing}" template="{template}")
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("framing", "template", "expected_format", "logger_format"),
    [
        ("octet-counted", "RSYSLOG_SyslogProtocol23Format", "rfc5424", "--rfc5424"),
        # rsyslog's high-precision BSD format; logger --rfc3164 gives a `tag:` rsyslog keeps.
        ("traditional", "RSYSLOG_ForwardFormat", "rfc3164", "--rfc3164"),
    ],
)
def test_rsyslog_omfwd(
    server: ServerProcess, tmp_path: Path, framing: str, template: str, expected_format: str, logger_format: str
) -> None:
    rsyslogd = require_tool("rsyslogd", "/usr/sbin/rsyslogd")
    logger = require_tool("logger")
    port = _free_port()
    _, target = server.address("tcp")
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(CONF.format(work=tmp_path, port=port, target=target, framing=framing, template=template))
    proc = subprocess.Popen(
        [rsyslogd, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    out = proc.stdout.read().decode() if proc.poll() is not None and proc.stdout else ""
                    pytest.fail(f"rsyslogd did not start: {out}")
                time.sleep(0.1)
        messages = tmp_path / "messages.txt"
        messages.write_text("".join(f"forwarded message {i} from rsyslog\n" for i in range(50)))
        subprocess.run([logger, logger_format, "--tcp", "-n", "127.0.0.1", "-P", str(port), "-t", "relayed",
                        "-f", str(messages)], check=True, timeout=30)
        report = server.wait_received(50, timeout=30)
    finally:
        proc.terminate()
        proc.wait(10)
    assert report["received"] == 50
    assert report["parsed"] == 50
    assert report["by_format"] == {expected_format: 50}
    assert report["by_service"].get("relayed") == 50
