"""Ships the commented default config and the systemd units inside the `logtallyd` package.

They live at the top of the repository (config.toml, systemd/), outside the package folder, so
the build copies them into `logtallyd/shipped/`; `logtallyd --print-config` and `--print-unit`
read them from there.
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ["config.toml", *sorted(str(p) for p in Path("systemd").glob("logtallyd*"))]


class BuildWithShipped(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "logtallyd" / "shipped"
        target.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED:
            (target / Path(name).name).write_bytes(Path(name).read_bytes())


setup(cmdclass={"build_py": BuildWithShipped})
