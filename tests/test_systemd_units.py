"""The shipped systemd units: `systemd-analyze verify` accepts them, and they say what the daemon expects.

verify fails when ExecStart= names a binary that does not exist. When `logtallyd` is installed
at the path the unit names, the unit is verified unmodified; otherwise a copy in a temp dir
gets ExecStart= rewritten to the installed `logtallyd` (or `python -m logtallyd`), and only that
line differs from the shipped file.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from logtallyd.daemon.activation import GENERIC_INGEST, ROLES

UNITS = Path(__file__).resolve().parents[1] / "systemd"
NAMES = ["logtallyd.service", "logtallyd.socket", "logtallyd-control.socket", "logtallyd-http.socket"]
SHIPPED_EXEC = "/usr/local/bin/logtallyd"


def directives(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order; repeated keys kept (systemd units allow them)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def values(path: Path, section: str, key: str) -> list[str]:
    return [v for k, v in directives(path)[section] if k == key]


def test_service_directives() -> None:
    service = UNITS / "logtallyd.service"
    expected = {
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "WatchdogSec": ["30"],
        "ExecStart": [f"{SHIPPED_EXEC} --config /etc/logtally/config.toml"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "KillMode": ["mixed"],
        "Restart": ["on-failure"],
        "DynamicUser": ["yes"],
        "StateDirectory": ["logtally"],
        "CacheDirectory": ["logtally"],  # numba's compiled prime kernels (sieve.numba_cache_dir)
        "LogsDirectory": ["logtally"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "NoNewPrivileges": ["yes"],
        "CapabilityBoundingSet": [""],
    }
    assert {key: values(service, "Service", key) for key in expected} == expected
    assert values(service, "Install", "Also") == ["logtallyd.socket logtallyd-control.socket logtallyd-http.socket"]
    # The HTTP socket is wanted, not required: a site that masks it keeps ingest and control.
    assert values(service, "Unit", "Wants") == ["logtallyd-http.socket"]


def test_sockets_match_the_daemon_defaults_and_names() -> None:
    ingest = UNITS / "logtallyd.socket"
    control = UNITS / "logtallyd-control.socket"
    http = UNITS / "logtallyd-http.socket"
    assert values(ingest, "Socket", "ListenStream") == ["5140"]
    assert values(ingest, "Socket", "ListenDatagram") == ["5140"]
    assert values(control, "Socket", "ListenStream") == ["127.0.0.1:5141", "/run/logtally/control.sock"]
    # The Unix socket is the trusted way in (every command works on it): only owner and group.
    assert values(control, "Socket", "SocketMode") == ["0660"]
    assert values(control, "Socket", "SocketGroup") == ["adm"]
    # `[http] listen`'s default, on loopback as the daemon requires without a token
    assert values(http, "Socket", "ListenStream") == ["127.0.0.1:5142"]
    names = [name for unit in (ingest, control, http) for name in values(unit, "Socket", "FileDescriptorName")]
    assert names == ["ingest", "control", "http"]
    assert all(name in GENERIC_INGEST or name in ROLES for name in names)  # activation.listener_role maps them
    for unit in (ingest, control, http):
        assert values(unit, "Socket", "Service") == ["logtallyd.service"]


def verify(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", *(f"./{name}" for name in NAMES)],
        cwd=directory, capture_output=True, text=True, timeout=60,
    )


def complaints(result: subprocess.CompletedProcess[str]) -> list[str]:
    """verify exits 0 on unknown keys and bad values; its messages name the unit, so read them."""
    return [line for line in (result.stdout + result.stderr).splitlines() if any(n in line for n in NAMES)]


def prepared(tmp_path: Path) -> Path:
    installed = shutil.which("logtallyd")
    for name in NAMES:
        shutil.copy(UNITS / name, tmp_path / name)
    if installed and Path(installed).resolve() == Path(SHIPPED_EXEC).resolve():
        return tmp_path  # verified exactly as shipped
    command = installed or f"{sys.executable} -m logtallyd"
    service = tmp_path / "logtallyd.service"
    text = service.read_text()
    shipped_line = f"ExecStart={SHIPPED_EXEC} --config /etc/logtally/config.toml"
    assert text.count(shipped_line) == 1
    service.write_text(text.replace(shipped_line, f"ExecStart={command} --config /etc/logtally/config.toml"))
    return tmp_path


@pytest.fixture
def analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (Debian: apt-get install systemd)")


@pytest.mark.usefixtures("analyze")
def test_units_verify_cleanly(tmp_path: Path) -> None:
    result = verify(prepared(tmp_path))
    assert (result.returncode, complaints(result)) == (0, [])


@pytest.mark.usefixtures("analyze")
def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    """Guards the test above: the same check fails on a broken unit."""
    directory = prepared(tmp_path)
    service = directory / "logtallyd.service"
    service.write_text(service.read_text().replace("Type=notify", "Type=notiffy"))
    assert any("notiffy" in line for line in complaints(verify(directory)))


@pytest.mark.usefixtures("analyze")
def test_verify_would_catch_a_missing_binary(tmp_path: Path) -> None:
    directory = prepared(tmp_path)
    service = directory / "logtallyd.service"
    lines = [
        "ExecStart=/nonexistent/logtallyd --config /etc/logtally/config.toml" if line.startswith("ExecStart=") else line
        for line in service.read_text().splitlines()
    ]
    service.write_text("\n".join(lines) + "\n")
    assert verify(directory).returncode != 0
