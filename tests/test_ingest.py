"""Ingestion end to end: a real logtallyd subprocess, real clients, exact counts."""
from __future__ import annotations

import json
import logging
import logging.handlers
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, require_tool, send_tcp


def balanced(report: dict) -> bool:
    return report["received"] == report["parsed"] + sum(report["rejected"].values())


def app_lines(n: int, start: int = 0) -> list[bytes]:
    return [b"2025-01-30 12:00:%02d INFO [api] request %d done" % (i % 60, i) for i in range(start, start + n)]


def test_nc_lines_are_counted_exactly(server: ServerProcess, tmp_path: Path) -> None:
    nc = shutil.which("nc")
    if nc is None:
        pytest.skip("nc (netcat-openbsd) not installed")
    path = tmp_path / "lines.log"
    path.write_bytes(b"\n".join(app_lines(1000)) + b"\n")
    host, port = server.address("tcp")
    with path.open("rb") as f:
        subprocess.run([nc, "-N", host, str(port)], stdin=f, check=True, timeout=30)
    report = server.wait_received(1000)
    assert report["received"] == 1000
    assert report["parsed"] == 1000
    assert report["by_format"] == {"app": 1000}
    assert balanced(report)


def test_logger_tcp_octet_count(server: ServerProcess, tmp_path: Path) -> None:
    logger = shutil.which("logger")
    if logger is None:
        pytest.skip("util-linux logger not installed")
    messages = tmp_path / "msgs.txt"
    messages.write_text("".join(f"octet message {i} with spaces\n" for i in range(200)))
    host, port = server.address("tcp")
    subprocess.run(
        [logger, "--tcp", "--octet-count", "-n", host, "-P", str(port), "-t", "myapp", "-f", str(messages)],
        check=True, timeout=30,
    )
    report = server.wait_received(200)
    assert report["received"] == 200
    assert report["parsed"] == 200
    assert report["by_format"].get("rfc5424", 0) + report["by_format"].get("rfc3164", 0) == 200
    assert report["by_service"].get("myapp") == 200


def test_logger_udp(server: ServerProcess) -> None:
    logger = shutil.which("logger")
    if logger is None:
        pytest.skip("util-linux logger not installed")
    host, port = server.address("udp")
    for i in range(20):
        subprocess.run([logger, "--udp", "-n", host, "-P", str(port), "-t", "udpapp", f"udp message {i}"],
                       check=True, timeout=10)
    report = server.wait_received(20)
    assert report["received"] == 20
    assert report["by_service"].get("udpapp") == 20


@pytest.mark.parametrize("socktype", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_python_sysloghandler(server: ServerProcess, socktype: int) -> None:
    address = server.address("tcp" if socktype == socket.SOCK_STREAM else "udp")
    handler = logging.handlers.SysLogHandler(address=address, socktype=socktype)
    logger = logging.getLogger(f"sysloghandler-test-{socktype}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        for i in range(100):
            (logger.error if i % 10 == 0 else logger.info)("handler message %d", i)
            if socktype == socket.SOCK_DGRAM and i % 20 == 0:
                time.sleep(0.01)
    finally:
        logger.removeHandler(handler)
        handler.close()
    report = server.wait_received(100)
    assert report["received"] == 100
    assert report["parsed"] == 100
    # SysLogHandler sends `<PRI>message` with the NUL trailer over TCP: PRI carries the level.
    assert report["by_level"].get("ERROR") == 10
    assert report["by_level"].get("INFO") == 90


@pytest.mark.parametrize("socktype", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_sysloghandler_exception_is_one_record_with_the_tag_as_service(server: ServerProcess,
                                                                      socktype: int) -> None:
    # The README snippet: a plain SysLogHandler, a `tag[pid]: ` formatter, `log.exception(...)`.
    address = server.address("tcp" if socktype == socket.SOCK_STREAM else "udp")
    handler = logging.handlers.SysLogHandler(address=address, socktype=socktype)
    handler.setFormatter(logging.Formatter("myapp[%(process)d]: %(message)s"))
    logger = logging.getLogger(f"sysloghandler-exception-{socktype}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("card declined")
        except ValueError:
            logger.exception("payment %s failed", 42)
    finally:
        logger.removeHandler(handler)
        handler.close()
    report = server.wait_received(1)
    assert (report["received"], report["parsed"]) == (1, 1)  # not one record per traceback line
    assert report["by_service"] == {"myapp": 1}
    assert report["by_level"] == {"ERROR": 1}
    [top] = server.command("TOP error")["top"]
    # the message keeps the traceback and loses the tag (the example is cut at the sketch's length)
    assert top["example"].startswith("payment 42 failed\nTraceback (most recent call last):\n  File ")


@pytest.mark.parametrize("delimiter, records", [("any", 5), ("nul", 2), ("learn", 2)])
def test_delimiter_switch(start_server, delimiter: str, records: int) -> None:
    server = start_server(f'[ingest]\ndelimiter = "{delimiter}"\n')
    traceback = b"<11>app: boom\nTraceback (most recent call last):\n  File \"x.py\", line 1\nValueError: x"
    send_tcp(server.address("tcp"), traceback + b"\x00<14>app: next\x00")
    report = server.wait_received(records)
    assert (report["received"], report["parsed"]) == (records, records)


def test_logger_tcp_without_octet_count(server: ServerProcess, tmp_path: Path) -> None:
    logger = require_tool("logger")
    messages = tmp_path / "msgs.txt"
    messages.write_text("".join(f"lf message {i}\n" for i in range(50)))
    host, port = server.address("tcp")
    subprocess.run([logger, "--tcp", "-n", host, "-P", str(port), "-t", "lfapp", "-f", str(messages)],
                   check=True, timeout=30)
    report = server.wait_received(50)
    assert (report["received"], report["parsed"]) == (50, 50)
    assert report["by_service"] == {"lfapp": 50}


def test_mixed_framing_and_ip_led_lines_on_one_connection(server: ServerProcess) -> None:
    access = b'10.1.3.6 - - [30/Jan/2025:12:00:00 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "curl/8.0" 0.004'
    syslog = b"<34>1 2025-01-30T12:00:00.000Z web1 su - ID47 - hello"
    data = b""
    for _ in range(50):
        data += access + b"\n"
        data += b"%d %s" % (len(syslog), syslog)
        data += b"<13>Jan 30 12:00:00 web1 app[12]: nul framed\x00"
    send_tcp(server.address("tcp"), data)
    report = server.wait_received(150)
    assert report["received"] == 150
    assert report["by_format"] == {"access": 50, "rfc5424": 50, "rfc3164": 50}


def test_garbage_and_oversize_flood_keeps_the_connection(start_server) -> None:
    server = start_server("[ingest]\nmax_message_bytes = 1000\n")
    with socket.create_connection(server.address("tcp")) as sock:
        sock.sendall(b"x" * 5000 + b"\n")  # one oversize line
        junk = bytes(b for b in range(256) if b not in (0x00, 0x0A)) * 3  # no terminators inside
        sock.sendall(junk + b"\n")  # binary junk within the limit: kept with U+FFFD, counted
        sock.sendall(b"y" * 1000 + b"\n")  # exactly at the limit: accepted
        sock.sendall(b"\n".join(app_lines(10)) + b"\n")
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)
    report = server.wait_received(13)
    assert report["received"] == 13
    assert report["rejected"].get("oversize") == 1
    assert report["by_format"].get("app") == 10
    assert report["notes"].get("invalid_utf8") == 1
    assert balanced(report)
    rejects = [json.loads(line) for line in (server.workdir / "rejects.log").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["oversize"]
    assert rejects[0]["peer"].startswith("127.0.0.1:")
    assert rejects[0]["line"].startswith("xxxx")


def test_oversize_octet_frame_is_one_reject_counting_the_bytes_discarded(start_server) -> None:
    server = start_server("[ingest]\nmax_message_bytes = 100\n")
    # Its count covers LF-separated lines: they are part of the one frame, discarded with it.
    big = b"<13>first\n" + b"".join(b"%s\n" % line for line in app_lines(20))
    ok = b"<13>Jan 30 12:00:00 web1 app: after"
    send_tcp(server.address("tcp"), b"%d %s%d %s\n" % (len(big), big, len(ok), ok))
    report = server.wait_received(2)
    assert (report["received"], report["parsed"], report["rejected"]) == (2, 1, {"oversize": 1})
    assert report["bytes"] == len(big) + len(ok)
    rejects = [json.loads(line) for line in (server.workdir / "rejects.log").read_text().splitlines()]
    assert [(r["reason"], r["line"][:10]) for r in rejects] == [("oversize", "<13>first\n")]


def test_empty_lines_are_rejected_and_written_to_rejects_file(server: ServerProcess) -> None:
    send_tcp(server.address("tcp"), b"2025-01-30 12:00:00 INFO ok\n\n   \n2025-01-30 12:00:01 INFO ok\n")
    report = server.wait_received(4)
    assert report["received"] == 4
    assert report["rejected"] == {"empty": 2}
    time.sleep(0.3)
    rejects = [json.loads(line) for line in (server.workdir / "rejects.log").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["empty", "empty"]


def test_500_concurrent_connections(server: ServerProcess) -> None:
    address = server.address("tcp")
    socks = [socket.create_connection(address, timeout=30) for _ in range(500)]
    try:
        deadline = time.monotonic() + 20
        while server.stats()["connections"]["open"] < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.stats()["connections"]["open"] == 500
        for i, sock in enumerate(socks):
            sock.sendall(b"2025-01-30 12:00:00 INFO [svc] line from connection %d\n" % i)
    finally:
        for sock in socks:
            sock.close()
    report = server.wait_received(500)
    assert report["received"] == 500
    assert report["connections"]["total"] == 500


def test_max_connections_limit(start_server) -> None:
    server = start_server("[ingest]\nmax_connections = 3\n")
    socks = [socket.create_connection(server.address("tcp")) for _ in range(3)]
    deadline = time.monotonic() + 10
    while server.stats()["connections"]["open"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    extra = socket.create_connection(server.address("tcp"))
    extra.settimeout(5)
    assert extra.recv(1) == b""  # refused: closed at once
    report = server.stats()
    assert report["connections"]["open"] == 3
    assert report["connections"]["refused"] == 1
    for sock in socks + [extra]:
        sock.close()


def test_idle_timeout_closes_silent_connections(start_server) -> None:
    server = start_server("[ingest]\nidle_timeout_s = 0.5\n")
    sock = socket.create_connection(server.address("tcp"))
    sock.settimeout(10)
    sock.sendall(b"2025-01-30 12:00:00 INFO partial line without newline")
    assert sock.recv(1) == b""  # closed by the server after 0.5 s of silence
    report = server.wait_received(1)
    assert report["connections"]["idle_closed"] == 1
    assert report["received"] == 1  # the pending line was delivered on close
    sock.close()


def test_backpressure_pauses_and_loses_nothing(start_server) -> None:
    server = start_server(
        "[pipeline]\nbatch_lines = 200\nmax_in_flight = 1\nmax_buffered_bytes = 20000\nworkers = 1\n"
    )
    n = 60_000
    data = b"\n".join(app_lines(n)) + b"\n"
    send_tcp(server.address("tcp"), data)
    report = server.wait_received(n, timeout=120)
    assert report["received"] == n
    assert report["parsed"] == n
    assert report["pipeline"]["pauses"] > 0


def test_sigterm_during_send_loses_nothing(start_server) -> None:
    server = start_server()
    n = 200_000
    data = b"\n".join(app_lines(n)) + b"\n"
    address = server.address("tcp")
    done = threading.Event()

    def sender() -> None:
        with socket.create_connection(address, timeout=60) as sock:
            view = memoryview(data)
            for i in range(0, len(view), 65536):
                sock.sendall(view[i : i + 65536])
        done.set()

    thread = threading.Thread(target=sender)
    thread.start()
    while server.stats()["received"] < 20_000:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGTERM)
    thread.join(60)
    assert done.is_set()
    assert server.stop() == 0
    stopped = server.wait_log("stopped")
    assert stopped["received"] == n
    assert stopped["parsed"] == n
    assert stopped["balanced"] is True


def test_tls_listener(start_server, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=60,
    )
    server = start_server(f'[ingest.tls]\nlisten = "127.0.0.1:0"\ncert = "{cert}"\nkey = "{key}"\n')
    import ssl

    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    with socket.create_connection(server.address("tls")) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            msg = b"<165>1 2025-01-30T12:00:00Z host app - - - over tls"
            tls.sendall(b"%d %s" % (len(msg), msg) + b"\n".join(app_lines(9)) + b"\n")
    report = server.wait_received(10)
    assert report["received"] == 10
    assert report["by_format"] == {"rfc5424": 1, "app": 9}


def test_control_unknown_command_help_and_connection_stays_usable(server: ServerProcess) -> None:
    with socket.create_connection(server.address("control")) as sock:
        f = sock.makefile("rwb")
        for command in (b"FROBNICATE\n", b"HELP\n", b"STATS\n"):
            f.write(command)
            f.flush()
        first, second, third = (json.loads(f.readline()) for _ in range(3))
    assert "error" in first and "FROBNICATE" in first["error"]
    assert "STATS [window] [cluster]" in second["commands"]
    for key in ("received", "parsed", "rejected", "bytes", "connections", "by_format", "uptime_s"):
        assert key in third


def test_echo_stats_into_nc(server: ServerProcess) -> None:
    nc = shutil.which("nc")
    if nc is None:
        pytest.skip("nc not installed")
    host, port = server.address("control")
    out = subprocess.run([nc, "-N", host, str(port)], input=b"STATS\n", capture_output=True, timeout=10, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["received"] == 0


def test_config_error_names_the_key(tmp_path: Path) -> None:
    import sys

    bad = tmp_path / "bad.toml"
    bad.write_text("[ingest]\nmax_message_bytes = \"big\"\n")
    out = subprocess.run([sys.executable, "-m", "logtallyd", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "ingest.max_message_bytes" in out.stderr
    bad.write_text("[ingest]\nmax_mesage_bytes = 10\n")
    out = subprocess.run([sys.executable, "-m", "logtallyd", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "max_mesage_bytes" in out.stderr


def test_shipped_config_loads() -> None:
    """config.toml documents every key the daemon knows, each at its built-in default."""
    import tomllib

    import msgspec

    from logtallyd.daemon.config import Config, load_config

    path = Path(__file__).resolve().parents[1] / "config.toml"
    config = load_config(path)
    assert config.ingest.tcp.endswith(":5140")
    assert config.control.listen == "127.0.0.1:5141"
    # Keys the shipped file deliberately sets differently from the built-in defaults: none. Paths
    # stay at their defaults too (rejects.log in the working directory, snapshots in the "auto"
    # state directory, archive off under /var/log/logtally), so `logtallyd --config config.toml` behaves exactly like `logtallyd`;
    # the README's systemd section says which paths to set in /etc/logtally/config.toml.
    deliberate: dict[str, object] = {}
    assert config == msgspec.structs.replace(Config(), **deliberate)

    # Every key is written out, not merely defaulted. TOML has no null, so keys whose default
    # is None (parse.force) can only appear as a comment; so does the alert routes' example (no
    # routes by default), which `tests/test_config.py` decodes uncommented.
    def keys(tree: object, prefix: str = "") -> set[str]:
        if not isinstance(tree, dict) or prefix == "stats.windows.":
            return {prefix.rstrip(".")}
        return set().union(*(keys(v, f"{prefix}{k}.") for k, v in tree.items())) if tree else {prefix.rstrip(".")}

    written = keys(tomllib.loads(path.read_text()))
    known = keys(msgspec.to_builtins(Config()))
    assert known - written == {"parse.force", "alerts"}
    assert written - known == set()
    assert "# force = " in path.read_text() and "# [[alerts]]" in path.read_text()


def test_parse_options_per_listener(start_server) -> None:
    server = start_server(
        '[listeners.udp.parse]\nforce = "rfc3164"\n'
        '[listeners.tcp.parse]\nformats = ["rfc5424", "rfc3164", "app"]\n'
    )
    app = b"2025-01-30 12:00:00 ERROR [api] boom"
    json_line = b'{"level": "error", "msg": "x"}'
    send_tcp(server.address("tcp"), app + b"\n" + json_line + b"\n")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.sendto(b"hello world", server.address("udp"))  # forced rfc3164: a bare line does not fit
    udp.sendto(b"<14>Jan 30 12:00:00 host tag: fits", server.address("udp"))
    udp.close()
    report = server.wait_received(4)
    assert report["received"] == 4
    # TCP: app allowed, JSON not (it stays raw); UDP: one rfc3164, one rejected.
    assert report["by_format"] == {"app": 1, "raw": 1, "rfc3164": 1}
    assert report["rejected"] == {"invalid_rfc3164": 1}


def test_one_large_read_is_cut_into_batches_of_batch_lines(start_server) -> None:
    server = start_server("[pipeline]\nbatch_lines = 100\n")
    send_tcp(server.address("tcp"), b"\n".join(app_lines(1000)) + b"\n")
    report = server.wait_received(1000)
    assert report["received"] == 1000
    assert report["pipeline"]["batches"] >= 10  # more only if the 50 ms deadline cut one short
