"""`completion bash|zsh|fish`: a shell completion script generated from the argparse definitions by
shtab, so the script never drifts from the options the parser takes."""
from __future__ import annotations

import argparse

import shtab

__all__ = ["completion_script"]


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    return shtab.complete(parser, shell)
