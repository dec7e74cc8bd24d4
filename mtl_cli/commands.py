"""The command lines mtl_cli records and prints, written so that a shell runs them as shown."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path


def command_line(prog: str, args: Sequence[str]) -> str:
    """``prog`` followed by the shell-quoted ``args``."""
    return " ".join([prog, *(shlex.quote(str(a)) for a in args)])


def resume_command(overrides: Sequence[str], target: Path | str, prog: str = "mtl-train") -> str:
    """The command that continues a run from ``target`` (its directory or a checkpoint) with its overrides."""
    kept = [o for o in overrides if not str(o).startswith("trainer.resume=")]
    return command_line(prog, [*kept, f"trainer.resume={target}"])
