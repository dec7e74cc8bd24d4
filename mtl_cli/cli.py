"""What every console script shares: argument normalisation and one-line error reports."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from mtl_cli.config import canonical_task_choice, known_task_names
from mtl_cli.errors import UserError, one_line

_TASK_ARG = re.compile(r"^(task)=([\w+,\s]+)$")
_UNKNOWN_WEIGHT = re.compile(r"Could not override 'loss\.weights\.(\w+)'")
_AVAILABLE = re.compile(r"Available options in '([\w/]+)':\n((?:\t\S+\n?)+)")


def normalise_task_args(argv: list[str]) -> list[str]:
    """Rewrite ``task=seg+cls`` (and sweeps ``task=cls,seg+cls``) into canonical task order.

    Unknown task names raise ``UserError`` naming the bad task and listing the known ones.
    """
    known = known_task_names()
    out = []
    for arg in argv:
        match = _TASK_ARG.match(arg)
        if match:
            choices = [c.strip() for c in match.group(2).split(",")]
            arg = f"task={','.join(canonical_task_choice(c, known) for c in choices)}"
        out.append(arg)
    return out


def _describe(exc: BaseException) -> str:
    """One line for a config error, its OmegaConf cause included without the key dump."""
    missing_weight = _UNKNOWN_WEIGHT.search(str(exc))
    if missing_weight:
        task = missing_weight.group(1)
        return f"loss.weights.{task} names a task that is not selected with task=; add it to task= or drop the weight"
    parts = [one_line(str(exc).split("\n")[0])]
    options = _AVAILABLE.search(str(exc))
    if options:  # a config group option that does not exist: list the ones that do
        parts.append(f"available {options.group(1)}: {', '.join(options.group(2).split())}")
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException):
        parts.append(one_line(str(cause).split("\n")[0]))
    elif isinstance(exc, OmegaConfBaseException):
        key = getattr(exc, "full_key", None)
        if key:
            parts.append(f"(key {key})")
    return ": ".join(p for p in parts if p)


@contextlib.contextmanager
def exit_on_user_error(prog: str, single_run: bool = True) -> Iterator[None]:
    """Inside a Hydra job: report a ``UserError`` as one line and exit 2.

    In a multirun the error is re-raised instead, so Hydra finishes the other jobs of the
    sweep before it reports the failure.
    """
    try:
        yield
    except UserError as exc:
        if not single_run:
            raise
        print(f"{prog}: error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)


def run_cli(prog: str, entry: Callable[[], object]) -> None:
    """Run a Hydra entry point; report user mistakes as ``<prog>: error: ...`` and exit 2."""
    try:
        sys.argv = [sys.argv[0], *normalise_task_args(sys.argv[1:])]
        # Let exceptions reach us instead of Hydra's multi-line report; genuine bugs still
        # show their full traceback.
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
        entry()
    except UserError as exc:
        print(f"{prog}: error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"{prog}: error: {_describe(exc)}", file=sys.stderr)
        sys.exit(2)
