"""The raw archive: every accepted line is kept, and `logtallyd analyze` over it gives the stats back."""
from __future__ import annotations

import json
import subprocess
import sys
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
