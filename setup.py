"""Ships the commented default config and the systemd units inside the `logtallyd` package, and
compiles the hot modules of `logtallyd.native.MODULES` with mypyc.

config.toml and systemd/ live at the top of the repository, outside the package folder, so the
build copies them into `logtallyd/shipped/`; `logtallyd --print-config` and `--print-unit` read
them from there.

Each compiled module is built from a copy of its source named `_<name>_native.py` (so the
pure-Python module stays importable beside it as the fallback), with the source's SHA-256
appended as `__native_source__`; `logtallyd.native.load` uses the twin only while that matches.
Without mypyc, or with LOGTALLY_NATIVE=0, or when the compiler fails, the package is pure Python.
"""
import importlib.util
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

SHIPPED = ["config.toml", *sorted(str(p) for p in Path("systemd").glob("logtallyd*"))]
STAGE = Path("build") / "native-src"


class BuildWithShipped(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "logtallyd" / "shipped"
        target.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED:
            (target / Path(name).name).write_bytes(Path(name).read_bytes())


class OptionalBuildExt(build_ext):
    """A failed compile leaves the pure-Python modules in use rather than failing the install."""

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # the compiler's errors are printed above
            print(f"logtally: {ext.name} not compiled ({exc}); the pure-Python module is used", file=sys.stderr)


def native_extensions() -> list:
    if os.environ.get("LOGTALLY_NATIVE") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("logtally: mypyc is not installed; the pure-Python modules are used", file=sys.stderr)
        return []
    spec = importlib.util.spec_from_file_location("_logtally_native", Path("server") / "native.py")
    native = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(native)
    paths = []
    for name in native.MODULES:
        package, last = name.split(".")[:-1], name.split(".")[-1]
        source = Path("server", *package[1:], last + ".py").read_bytes()
        folder = STAGE.joinpath(*package)
        for level in range(1, len(package) + 1):
            init = STAGE.joinpath(*package[:level], "__init__.py")
            init.parent.mkdir(parents=True, exist_ok=True)
            init.touch()
        target = folder / f"_{last}_native.py"
        target.write_bytes(source + f'\n__native_source__ = "{native.source_digest(source)}"\n'.encode())
        paths.append(str(target))
    extensions = []
    for path in paths:  # one at a time: a module mypy rejects leaves the others compiled
        try:
            # Imports of the rest of the package are not followed: they are typed Any in the
            # twins, which call them as the interpreter would.
            extensions += mypycify(["--ignore-missing-imports", "--follow-imports=skip", path],
                                   opt_level="3", separate=True)
        except (Exception, SystemExit) as exc:  # mypy's type errors end in SystemExit
            print(f"logtally: mypyc failed on {path} ({exc}); its pure-Python module is used", file=sys.stderr)
    return extensions


setup(cmdclass={"build_py": BuildWithShipped, "build_ext": OptionalBuildExt}, ext_modules=native_extensions())
