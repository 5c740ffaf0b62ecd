"""syslog-ng relaying to logtallyd with the README's destinations, `syslog()` (RFC 5424,
octet-counted) and `network()` (BSD format, LF), and its relay source with keep-hostname(yes)."""
from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, ServerProcess, require_tool, send_tcp

SECTION = "## Shipping logs"


def readme_snippet(marker: str) -> str:
    """The one fenced block of the README's shipping section that contains `marker`, verbatim."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    section = text[start:text.index("\n## ", start + len(SECTION))]
    blocks = [b for b in re.findall(r"^```[a-z]*\n(.*?)^```$", section, re.S | re.M) if marker in b]
    assert len(blocks) == 1, f"expected one README block with {marker!r}, found {len(blocks)}"
    return blocks[0]


SYSLOG_DEST = readme_snippet('syslog("127.0.0.1"')
NETWORK_DEST = readme_snippet('network("127.0.0.1"')
RELAY = readme_snippet("keep-hostname(yes)")

# The README's `s_src` is Debian's local source; here it is a loopback listener the test writes to.
# use-dns(no): without keep-hostname, syslog-ng puts the sender's address in HOSTNAME, not a name
# that depends on the machine's resolver.
LOCAL_SOURCE = 'source s_src {{ network(ip("127.0.0.1") transport("tcp") port({port}) use-dns(no)); }};\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _target(snippet: str, port: int) -> str:
    assert snippet.count("port(5140)") == 1
    return snippet.replace("port(5140)", f"port({port})")


def _relay(dest_name: str, port: int) -> str:
    # The README's relay feeds d_logtally; the network() case feeds its own destination instead.
    assert 'ip("0.0.0.0")' in RELAY and "port(514)" in RELAY and "destination(d_logtally)" in RELAY
    return (RELAY.replace('ip("0.0.0.0")', 'ip("127.0.0.1")').replace("port(514)", f"port({port})")
            .replace("destination(d_logtally)", f"destination({dest_name})"))


def _lines(host: str, service: str, n: int) -> bytes:
    stamp = time.strftime("%b %e %H:%M:%S")  # RFC 3164 §4.1.2: the day is space-padded
    return b"".join(f"<14>{stamp} {host} {service}[42]: relayed message {i}\n".encode() for i in range(n))


class SyslogNg:
    """`syslog-ng -F` on a config file, with its persist file, pid file and control socket in `work`."""

    def __init__(self, work: Path, config: str) -> None:
        self.binary = require_tool("syslog-ng", "/usr/sbin/syslog-ng")
        self.conf = work / "syslog-ng.conf"
        self.conf.write_text("@version: 3.38\n" + config)
        self.work = work

    def start(self) -> subprocess.Popen:
        return subprocess.Popen(
            [self.binary, "-F", "-f", str(self.conf), f"--persist-file={self.work / 'syslog-ng.persist'}",
             f"--pidfile={self.work / 'syslog-ng.pid'}", f"--control={self.work / 'syslog-ng.ctl'}", "--stderr"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )


def _wait_listening(proc: subprocess.Popen, *ports: int) -> None:
    deadline = time.monotonic() + 15
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"syslog-ng did not start:\n{proc.communicate()[0]}")
                time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("snippet", "dest_name", "expected_format"),
    [(SYSLOG_DEST, "d_logtally", "rfc5424"), (NETWORK_DEST, "d_logtally_lf", "rfc3164")],
    ids=["syslog", "network"],
)
def test_syslog_ng_destination(server: ServerProcess, tmp_path: Path, snippet: str, dest_name: str,
                               expected_format: str) -> None:
    local, relay = _free_port(), _free_port()
    _, target = server.address("tcp")
    config = LOCAL_SOURCE.format(port=local) + _target(snippet, target) + _relay(dest_name, relay)
    proc = SyslogNg(tmp_path, config).start()
    try:
        _wait_listening(proc, local, relay)
        send_tcp(("127.0.0.1", local), _lines("web7", "localapp", 30))
        send_tcp(("127.0.0.1", relay), _lines("web7", "relayed", 40))
        report = server.wait_received(70, timeout=15)
    finally:
        _stop(proc)
    assert report["received"] == 70
    assert report["parsed"] == 70
    assert report["by_format"] == {expected_format: 70}
    assert report["by_service"] == {"localapp": 30, "relayed": 40}
    # keep-hostname(yes) on the relay keeps the sender's HOSTNAME; the local source without it does not.
    assert report["by_host"] == {"web7": 40, "127.0.0.1": 30}


def _both_destinations(local: int, target: int) -> str:
    return (LOCAL_SOURCE.format(port=local) + _target(SYSLOG_DEST, target) + _target(NETWORK_DEST, target))


def test_two_destinations_to_one_port_need_persist_name(server: ServerProcess, tmp_path: Path) -> None:
    local = _free_port()
    _, target = server.address("tcp")
    refused = SyslogNg(tmp_path, _both_destinations(local, target)).start()
    try:
        out, _ = refused.communicate(timeout=15)
    finally:
        _stop(refused)
    assert refused.returncode != 0
    assert "persist-name" in out or "perist-name" in out  # syslog-ng 3.38 spells it "perist-name()"

    named = (_both_destinations(local, target)
             .replace(f"port({target}));", f'port({target}) persist-name("logtally_5424"));', 1)
             .replace(f'port({target}));', f'port({target}) persist-name("logtally_lf"));', 1))
    assert named.count("persist-name(") == 2
    proc = SyslogNg(tmp_path, named).start()
    try:
        _wait_listening(proc, local)
        send_tcp(("127.0.0.1", local), _lines("web7", "both", 25))
        report = server.wait_received(50, timeout=15)
    finally:
        _stop(proc)
    # Each message goes out once per destination, in each one's framing.
    assert report["received"] == 50
    assert report["by_format"] == {"rfc5424": 25, "rfc3164": 25}
    assert report["by_service"] == {"both": 50}
