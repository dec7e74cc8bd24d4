"""Running ``mtl-train`` in this process: exit code, stderr, and whether it got as far as training."""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import mtl_cli.train as train_module


class Accepted(Exception):
    """Raised instead of training: the command passed every check that comes before training."""


@dataclass
class Outcome:
    code: int | None  # None: accepted (it would have trained)
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def run_train(monkeypatch: pytest.MonkeyPatch, cwd: Path, *args: str) -> Outcome:
    """``mtl-train <args>`` in ``cwd`` through its console entry point, with training replaced by ``Accepted``."""

    def accept(*_: object, **__: object) -> None:
        raise Accepted

    monkeypatch.setattr(train_module, "train_run", accept)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["mtl-train", *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            train_module.main()
        except SystemExit as exc:
            return Outcome(exc.code if isinstance(exc.code, int) else 1, err.getvalue())
        except Accepted:
            return Outcome(None, err.getvalue())
    return Outcome(0, err.getvalue())


def leftovers(root: Path, keep: set[str] = frozenset()) -> list[Path]:
    """Everything under ``root`` that a command created (``keep`` names the test's own files)."""
    return [p for p in root.rglob("*") if p.relative_to(root).parts[0] not in keep]
