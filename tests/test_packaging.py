"""Packaging: the wheel installs only the project's own import names, carries its metadata, the
shipped config and the systemd units, and works from a fresh virtualenv."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OLD_NAME = "logt" + "ide"  # spelled apart so this file does not match its own search


def test_old_name_is_gone_outside_the_changelog() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    hits = []
    for name in tracked.stdout.split():
        path = ROOT / name
        if name == "CHANGELOG.md" or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace").lower()
        if OLD_NAME in text or OLD_NAME in name.lower():
            hits.append(name)
    assert hits == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=300)
    (found,) = out.glob("logtally-*.whl")
    return found


def test_wheel_has_unique_import_names_metadata_and_shipped_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
        assert top == {"logtally", "logtallyd"}
        shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("logtallyd/shipped/")}
        assert shipped == {"config.toml", "logtallyd.service", "logtallyd.socket", "logtallyd-control.socket",
                           "logtallyd-http.socket"}
        assert zf.read("logtallyd/shipped/config.toml") == (ROOT / "config.toml").read_bytes()
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(zf.read(meta_name).decode())
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert meta["Name"] == "logtally"
    assert meta["License-Expression"] == "MIT"
    assert "logtally developers" in meta["Author"]


def test_wheel_in_a_fresh_venv_prints_a_config_that_loads(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=600)
    printed = subprocess.run([str(venv / "bin" / "logtallyd"), "--print-config"], cwd=tmp_path,
                             check=True, capture_output=True, text=True, timeout=60).stdout
    assert printed == (ROOT / "config.toml").read_text()
    config = tmp_path / "printed.toml"
    config.write_text(printed)
    loaded = subprocess.run(
        [str(py), "-c", "import sys; from logtallyd.daemon.config import load_config; "
                        "print(load_config(sys.argv[1]).control.listen)", str(config)],
        cwd=tmp_path, check=True, capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "127.0.0.1:5141"
    for unit in ("logtallyd.service", "logtallyd.socket", "logtallyd-control.socket", "logtallyd-http.socket"):
        text = subprocess.run([str(venv / "bin" / "logtallyd"), "--print-unit", unit], cwd=tmp_path,
                              check=True, capture_output=True, text=True, timeout=60).stdout
        assert text == (ROOT / "systemd" / unit).read_text()
    version = subprocess.run([str(venv / "bin" / "logtally"), "--version"], cwd=tmp_path,
                             check=True, capture_output=True, text=True, timeout=60).stdout
    assert version.strip() == "logtally 0.1.0"
    # The compiled twins (logtallyd.native) are in the wheel and in use; a machine without a C
    # compiler gets a pure-Python wheel, so this is required only under CI.
    status = subprocess.run([str(py), "-c", "from logtallyd import native; print(sorted(native.status().values()))"],
                            cwd=tmp_path, check=True, capture_output=True, text=True, timeout=60).stdout
    if os.environ.get("CI") == "true":
        from logtallyd import native

        assert status.strip() == str([True] * len(native.MODULES))
    # Nothing generic lands in site-packages.
    generic = subprocess.run([str(py), "-c", "import server"], cwd=tmp_path, capture_output=True, text=True)
    assert generic.returncode != 0 and "No module named 'server'" in generic.stderr
