"""The control port's AUTH token (`[control] token_file`, read at start and on SIGHUP) and the
HTTP API's bearer token (`[http] token_file`).

A file other users may read (or write) is refused: the token would be theirs too. Errors name the
key and the file, never the token.
"""
from __future__ import annotations

import os
import stat

from logtallyd.daemon.config import ConfigError
from logtallyd.publish.config import ControlConfig

MIN_TOKEN_CHARS = 16  # `openssl rand -hex 16` gives 32; shorter tokens are guessable offline
MAX_TOKEN_BYTES = 4096  # must fit a control command line with `AUTH ` in front


def load_token(control: ControlConfig) -> str | None:
    """The token, or None when `control.token_file` is unset; `ConfigError` for an unusable file."""
    return read_token(control.token_file, "control.token_file")


def read_token(path: str, key: str) -> str | None:
    """The token in the file at `path` (the config `key` names it in errors); None when unset."""
    if not path:
        return None
    where = f"{key} = {path!r}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())  # of the file read, not of whatever the path names later
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where}: not a regular file")
        if info.st_mode & 0o007:
            mode = stat.S_IMODE(info.st_mode)
            raise ConfigError(f"{where}: other users may read or write it (mode {mode:04o}); chmod 600 or 640")
        raw = file.read(MAX_TOKEN_BYTES + 1)
    if len(raw) > MAX_TOKEN_BYTES:
        raise ConfigError(f"{where}: longer than {MAX_TOKEN_BYTES} bytes")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: the token must be printable ASCII") from None
    if len(token.split()) != 1 or not token.isprintable():
        raise ConfigError(f"{where}: the file must hold one token, a single word")
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{where}: the token is shorter than {MIN_TOKEN_CHARS} characters")
    # One word (checked above), so `AUTH <token>` splits back into exactly the token.
    return token
