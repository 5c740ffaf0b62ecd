"""The README's netcat, logger and Python snippets run as written (with the test's ports), and every
fenced block of its shipping section is run by a test or says it is not tested here."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, ServerProcess, require_tool

SECTION = "## Shipping logs"
ACCESS = '10.1.3.6 - - [30/Jan/2025:12:00:00 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "curl/8.0" 0.004\n'

# What runs each block, found by a string only that block holds.
EXERCISED = {
    "nc -N 127.0.0.1 5140": "tests/test_readme_shippers.py",
    "logging.handlers.SysLogHandler": "tests/test_readme_shippers.py",
    'TCP_Framing="octet-counted"': "tests/test_rsyslog_forward.py",
    'syslog("127.0.0.1"': "tests/test_syslog_ng_forward.py",
    'network("127.0.0.1"': "tests/test_syslog_ng_forward.py",
    "keep-hostname(yes)": "tests/test_syslog_ng_forward.py",
    "logtally send --wait --concurrency": "tests/test_client.py",
    'client_ca = "/etc/logtally/clients-ca.crt"': "tests/test_ingest_tls.py",
    "-no_ign_eof -connect logs.example.org:6514": "tests/test_ingest_tls.py",
    'subjects = ["logs.>"]': "tests/test_nats_source.py",
}


def shipping_blocks() -> list[tuple[str, str]]:
    """(prose before the block, block body) for each fenced block of the shipping section."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    section = text[start:text.index("\n## ", start + len(SECTION))]
    parts = re.split(r"^```[a-z]*\n(.*?)^```$", section, flags=re.S | re.M)
    return [(parts[i - 1], parts[i]) for i in range(1, len(parts), 2)]


def block_with(marker: str) -> str:
    found = [body for _, body in shipping_blocks() if marker in body]
    assert len(found) == 1, f"expected one README block with {marker!r}, found {len(found)}"
    return found[0]


def test_every_shipping_block_is_run_or_marked() -> None:
    blocks = shipping_blocks()
    assert len(blocks) == 11
    for prose, body in blocks:
        owners = {test for marker, test in EXERCISED.items() if marker in body}
        if not owners:
            # the mark stands in the paragraph that introduces the block
            assert "not tested here" in " ".join(prose.strip().split("\n\n")[-1].split()), body
        for test in owners:
            assert (ROOT / test).exists(), test


def test_nc_and_logger_commands(server: ServerProcess, tmp_path: Path) -> None:
    require_tool("nc")
    require_tool("logger")
    _, tcp = server.address("tcp")
    _, udp = server.address("udp")
    access_log = tmp_path / "access.log"
    access_log.write_text(ACCESS * 20)  # `tail -F` sends the last 10, then what is appended
    commands = [line for line in block_with("nc -N 127.0.0.1 5140").splitlines() if line and not line.startswith("#")]
    assert len(commands) == 4
    for command in commands:
        command = command.replace("5140", str(udp if "--udp" in command else tcp))
        if command.startswith("tail -F"):
            command = command.replace("/var/log/nginx/access.log", str(access_log))
            # `tail -F` follows forever: stop the pipeline once its lines are counted.
            follow = subprocess.Popen(["sh", "-c", command], start_new_session=True)
            try:
                before = server.stats()["received"]
                server.wait_received(before + 10, timeout=15)
                with access_log.open("a") as f:
                    f.write(ACCESS * 5)
                server.wait_received(before + 15, timeout=15)
            finally:
                os.killpg(follow.pid, signal.SIGTERM)
                follow.wait(10)
        else:
            subprocess.run(["sh", "-c", command], check=True, timeout=30)
    report = server.wait_received(18, timeout=15)
    assert report["received"] == 18
    assert report["parsed"] == 18
    assert report["by_format"] == {"raw": 1, "access": 15, "rfc5424": 2}
    assert report["by_service"].get("myapp") == 2
    assert report["by_level"].get("ERROR") == 1  # `-p user.err`


def test_python_sysloghandler_snippet(server: ServerProcess) -> None:
    _, tcp = server.address("tcp")
    _, udp = server.address("udp")
    lines = block_with("logging.handlers.SysLogHandler").splitlines()
    code = "\n".join(line.replace("5140", str(tcp if "SOCK_STREAM" in line else udp)) for line in lines)
    assert code.count(str(tcp)) == 1 and code.count(str(udp)) == 1
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    report = server.wait_received(2, timeout=15)
    assert report["received"] == 2
    assert report["parsed"] == 2
    assert report["by_service"] == {"myapp": 2}
    assert report["by_level"] == {"ERROR": 2}
    assert report["by_format"] == {"rfc3164": 2}
