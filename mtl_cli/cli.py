"""What every console script shares: argument normalisation and one-line error reports."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from mtl_cli.config import CONFIG_DIR, canonical_task_choice, known_task_names
from mtl_cli.config.schema import DEFAULT_WEIGHTING
from mtl_cli.errors import UserError, one_line

_TASK_ARG = re.compile(r"^(task)=([\w+,\s]+)$")
_UNKNOWN_WEIGHT = re.compile(r"Could not override 'loss\.weights\.(\w+)'")
_UNKNOWN_OPTION = re.compile(r"Could not override 'weighting\.(\w+)'")
_AVAILABLE = re.compile(r"Available options in '([\w/]+)':\n((?:\t\S+\n?)+)")
_NOT_LOADED = re.compile(r"Could not load '([\w/]+)/[^/']+'")  # an option of a list, e.g. logger=[csv,foo]


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


def _weighting_choice(argv: Sequence[str]) -> str:
    """The ``weighting=`` choice on the command line (the default method without one)."""
    chosen = [a.partition("=")[2] for a in argv if a.startswith("weighting=")]
    return chosen[-1] if chosen else DEFAULT_WEIGHTING


def _unknown_option(option: str, argv: Sequence[str]) -> str:
    """``weighting.<option>`` that the chosen method does not have: name the method's options."""
    from mtl_cli.weighting import method_options  # imports torch: only for this message

    name = _weighting_choice(argv)
    known = method_options(name)
    if known is None:
        return f"weighting.{option}: weighting={name} is not a known method"
    return f"weighting.{option}: weighting={name} has no option '{option}'; its options: {', '.join(known) or 'none'}"


def _describe(exc: BaseException, argv: Sequence[str] = ()) -> str:
    """One line for a config error, its OmegaConf cause included without the key dump."""
    missing_weight = _UNKNOWN_WEIGHT.search(str(exc))
    if missing_weight:
        task = missing_weight.group(1)
        return f"loss.weights.{task} names a task that is not selected with task=; add it to task= or drop the weight"
    unknown_option = _UNKNOWN_OPTION.search(str(exc))
    if unknown_option:
        return _unknown_option(unknown_option.group(1), argv)
    parts = [one_line(str(exc).split("\n")[0])]
    options = _AVAILABLE.search(str(exc))
    not_loaded = _NOT_LOADED.search(str(exc))
    if options:  # a config group option that does not exist: list the ones that do
        parts.append(f"available {options.group(1)}: {', '.join(options.group(2).split())}")
    elif not_loaded and (CONFIG_DIR / not_loaded.group(1)).is_dir():
        known = sorted(p.stem for p in (CONFIG_DIR / not_loaded.group(1)).glob("*.yaml"))
        parts.append(f"available {not_loaded.group(1)}: {', '.join(known)}")
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
        print(f"{prog}: error: {_describe(exc, sys.argv[1:])}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C while starting up (training itself stops cleanly on it)
        print(f"{prog}: interrupted (SIGINT)", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
