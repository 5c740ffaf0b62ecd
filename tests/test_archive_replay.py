"""The raw archive: every accepted line is kept, `logtallyd analyze` over it gives the stats back,
and after a kill -9 the daemon counts every archived line exactly once."""
from __future__ import annotations

import gzip
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import ROOT, send_tcp


def test_analyze_over_the_archive_reproduces_the_stats(start_server, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    server = start_server(
        f'[archive]\nenabled = true\ndirectory = "{archive}"\nmax_bytes = 20000\nkeep_segments = 0\n'
        "[pipeline]\nbatch_lines = 100\n"  # several batches whatever the timing: the archive rotates
    )
    stream = b""
    for i in range(600):
        if i % 3 == 0:
            stream += (f'10.0.0.{i % 50} - - [30/Jan/2025:12:{i // 60:02d}:{i % 60:02d} +0000] '
                       f'"GET /p{i % 7} HTTP/1.1" {500 if i % 11 == 0 else 200} {i} "-" "agent/{i % 3}" 0.0{i % 9}\n'
                       ).encode()
        elif i % 3 == 1:
            stream += f"2025-01-30 12:{i // 60:02d}:{i % 60:02d} ERROR [api] Timeout talking to db {i}\n".encode()
        else:  # octet-counted, with an LF inside the message
            msg = f"<165>1 2025-01-30T12:{i // 60:02d}:{i % 60:02d}Z web{i % 4} app - - - line\nwith newline {i}"
            stream += f"{len(msg.encode())} {msg}".encode()
    send_tcp(server.address("tcp"), stream)
    live = server.wait_received(600)
    assert live["received"] == 600
    assert server.stop() == 0
    segments = sorted(p.name for p in archive.iterdir())
    assert len(segments) > 1  # rotated by size
    assert any(name.endswith(".gz") for name in segments)  # closed segments are compressed
    out = subprocess.run(
        [sys.executable, "-m", "logtallyd", "analyze", str(archive), "--json", "--workers", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=True,
    )
    replayed = json.loads(out.stdout)
    for key in ("received", "parsed", "rejected", "bytes", "by_format", "by_level", "by_service", "errors"):
        if key == "bytes":
            continue  # the archive stores a frame's LFs as spaces and drops octet-count headers
        assert replayed[key] == live[key], key
    assert replayed["http"]["by_status"] == live["http"]["by_status"]


# -- the archive as write-ahead log: kill -9, restart, every archived line counted once ----------

def crash_lines(start: int, n: int) -> bytes:
    """App lines, with an `invalid_json` and a `bad_pri` rejection in every ten."""
    out = []
    for i in range(start, start + n):
        if i % 10 == 3:
            out.append(b"{broken json %d" % i)
        elif i % 10 == 7:
            out.append(b"<999>1 2025-01-30T12:00:00Z h a - - - bad pri %d" % i)
        else:
            out.append(b"2025-01-30 12:%02d:%02d ERROR [svc%d] request %d failed" % (i // 60 % 60, i % 60, i % 5, i))
    return b"\n".join(out) + b"\n"


def archived_lines(directory: Path) -> int:
    """Lines on disk in the archive, rotated and gzipped segments included."""
    total = 0
    for path in directory.iterdir():
        if path.name.endswith(".gz"):
            total += gzip.decompress(path.read_bytes()).count(b"\n")
        elif path.name.endswith(".log"):
            total += path.read_bytes().count(b"\n")
    return total


def crash_config(tmp_path: Path, interval: float, fsync: str = "interval") -> str:
    return (
        f'[state]\ndirectory = "{tmp_path / "state"}"\nsnapshot_interval_s = {interval}\n'
        f'[archive]\nenabled = true\ndirectory = "{tmp_path / "archive"}"\nmax_bytes = 30000\n'
        f'keep_segments = 0\nfsync = "{fsync}"\n'
        "[pipeline]\nbatch_lines = 200\n"
    )


def test_kill_9_replays_every_archived_line_once(start_server, tmp_path: Path) -> None:
    # No periodic snapshot within the test: only the one written at start, before any line, so
    # without replay the restart would count nothing.
    config = crash_config(tmp_path, 3600, fsync="batch")
    first = start_server(config)
    send_tcp(first.address("tcp"), crash_lines(0, 3000))
    live = first.wait_received(3000)
    assert live["received"] == 3000
    assert live["archive"]["fsyncs"] >= 1  # fsync = "batch": before each batch was counted
    first.stop(signal.SIGKILL)
    assert archived_lines(tmp_path / "archive") == 3000

    second = start_server(config)
    assert second.wait_log("state_restored")["clean"] is False
    assert second.wait_log("archive_replayed")["lines"] == 3000
    after = second.stats()
    for key in ("received", "parsed", "rejected", "by_format", "by_level", "by_service", "errors"):
        assert after[key] == live[key], key
    assert after["rejected"] == {"bad_pri": 300, "invalid_json": 300}
    assert after["archive"]["replayed_lines"] == 3000
    # The replay is in the snapshot written at start: a second crash does not count it twice.
    second.stop(signal.SIGKILL)
    third = start_server(config)
    assert third.wait_log("archive_replayed")["lines"] == 0
    assert third.stats()["received"] == 3000


def test_kill_9_mid_stream_counts_exactly_what_the_archive_holds(start_server, tmp_path: Path) -> None:
    # Snapshots every 0.2 s while lines stream in, segments rotating and gzipped: whatever was in
    # flight at the kill, the restart counts each archived line once, and analyze agrees.
    config = crash_config(tmp_path, 0.2)
    first = start_server(config)
    stop = threading.Event()
    sent = 0

    def stream() -> None:
        nonlocal sent
        try:
            with socket.create_connection(first.address("tcp"), timeout=30) as sock:
                while not stop.is_set():
                    sock.sendall(crash_lines(sent, 500))
                    sent += 500
                    time.sleep(0.01)
        except OSError:
            pass  # the daemon was killed under us

    sender = threading.Thread(target=stream)
    sender.start()
    first.wait_received(20_000, timeout=60)
    first.wait_log("archive_rotated")
    first.stop(signal.SIGKILL)
    stop.set()
    sender.join(30)
    archived = archived_lines(tmp_path / "archive")
    assert 20_000 <= archived <= sent

    second = start_server(config)
    replayed = second.wait_log("archive_replayed")["lines"]
    after = second.stats()
    assert after["received"] == archived
    assert after["parsed"] + sum(after["rejected"].values()) == archived
    assert replayed <= archived
    assert second.stop() == 0
    out = subprocess.run(
        [sys.executable, "-m", "logtallyd", "analyze", str(tmp_path / "archive"), "--json", "--workers", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=True,
    )
    offline = json.loads(out.stdout)
    for key in ("received", "parsed", "rejected", "by_format", "by_service", "errors"):
        assert offline[key] == after[key], key
