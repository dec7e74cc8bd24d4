"""Hydra callbacks registered in ``configs/train.yaml`` (``hydra.callbacks``).

Hydra turns exceptions raised in callbacks into warnings, so a refusal here prints the
usual one-line error and exits with ``SystemExit``.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from mtl_cli.commands import command_line
from mtl_cli.config import validate
from mtl_cli.engine.build import build_tasks
from mtl_cli.engine.rundir import claim_directory
from mtl_cli.errors import UserError, one_line
from mtl_cli.reporting import build_report, write_report

log = logging.getLogger("mtl_cli")


class RunDirGuard(Callback):
    """Refuse to start a run or sweep in a directory that already holds one, or a run whose config is invalid.

    Under torchrun the ranks other than 0 run in fresh scratch directories (see
    ``engine/distributed.py``), so every rank passes this check.
    """

    def __init__(self, prog: str = "mtl-train", check_config: bool = False) -> None:
        self.prog = prog
        self.check_config = check_config  # validate the training config first (``configs/train.yaml``)

    def _refuse(self, exc: UserError) -> None:
        print(f"{self.prog}: error: {one_line(str(exc))}", file=sys.stderr)
        raise SystemExit(2) from None

    def _check_config(self, config: DictConfig) -> None:
        """Validate the job's config before its directory is claimed, so a refused run leaves nothing behind."""
        if not self.check_config:
            return
        job = copy.deepcopy(config)
        with open_dict(job):
            job.pop("hydra", None)
        try:
            build_tasks(validate(job))
        except UserError as exc:
            self._refuse(exc)

    def _claim(self, config: DictConfig, key: str, marker: str | None, content: str | None = None) -> None:
        try:
            path = Path(str(OmegaConf.select(config, key, throw_on_missing=True)))
        except OmegaConfBaseException as exc:
            log.warning("cannot check %s before the run starts: %s", key, exc)
            return
        try:
            claim_directory(path, key, marker, content)
        except UserError as exc:
            self._refuse(exc)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check_config(config)
        subdir = OmegaConf.select(config, "hydra.output_subdir")
        self._claim(config, "hydra.run.dir", None if subdir is None else str(subdir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "hydra.sweep.dir", "command.txt", command_line(self.prog, sys.argv[1:]))


class MultirunReport(Callback):
    """At the end of a multirun, write the report (``report.md``, ``report.csv``, ``pareto.png``) into the sweep dir.

    Hydra skips ``on_multirun_end`` when a job of the sweep failed; the report is then
    written when the process exits, so failed sweeps get their report too.
    """

    def __init__(self) -> None:
        self._pending: tuple[Path, list[str]] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes records
            return
        try:
            sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir", throw_on_missing=True)))
        except OmegaConfBaseException as exc:
            log.warning("no sweep report: %s", exc)
            return
        baselines = [str(b) for b in (OmegaConf.select(config, "sweep.baselines") or [])]
        self._pending = (sweep_dir, baselines)
        atexit.register(self._write)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._write()

    def _write(self) -> None:
        if self._pending is None:
            return
        sweep_dir, baselines = self._pending
        self._pending = None
        try:
            report = build_report([sweep_dir], baselines)
            written = write_report(report, sweep_dir)
        except UserError as exc:
            log.warning("no sweep report: %s", exc)
            return
        print(report.markdown(), flush=True)
        log.info("sweep report: %s", ", ".join(str(p) for p in written))
