"""``mtl-train``: compose the Hydra config, validate it, train one run (or a sweep with -m)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mtl_cli.cli import exit_on_user_error, run_cli
from mtl_cli.commands import command_line, resume_command
from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine import distributed
from mtl_cli.engine.build import build_tasks
from mtl_cli.engine.evaluate import metric_directions
from mtl_cli.engine.objective import Objective
from mtl_cli.engine.run import train_run
from mtl_cli.engine.signals import TrainingInterrupted
from mtl_cli.loggers import RunInfo

register_configs()


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> float | None:
    """Hydra task function: one training run in Hydra's run (or sweep job) directory.

    Returns the value of ``sweep.objective`` for sweepers such as Optuna.
    """
    hydra_cfg = HydraConfig.get()
    single_run = hydra_cfg.mode == RunMode.RUN
    overrides = list(hydra_cfg.overrides.task)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    tracking = tracked_run(hydra_cfg, run_dir, overrides, single_run)
    command = command_line("mtl-train", sys.argv[1:] if single_run else overrides)
    with exit_on_user_error("mtl-train", single_run=single_run), distributed.name_failing_rank("mtl-train"):
        typed = validate(cfg)
        objective = Objective(typed, metric_directions(build_tasks(typed)))
        try:
            summary = train_run(typed, run_dir, overrides=overrides, command=command, tracking=tracking)
        except TrainingInterrupted as exc:
            if distributed.current().is_main:
                print(f"mtl-train: {exc}\nresume with:\n  {resume_command(overrides, run_dir)}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None
        return objective.value(summary)


def tracked_run(hydra_cfg: DictConfig, run_dir: Path, overrides: list[str], single_run: bool) -> RunInfo:
    """How the experiment trackers see this run: a multirun's jobs form one group (the sweep dir).

    The job's overrides become tags; local tracker stores (MLflow's) go to the working
    directory, beside ``outputs/``; a sweep job is named by its overrides.
    """
    cwd = Path(hydra_cfg.runtime.cwd)
    group, name = None, _shown(run_dir, cwd)
    if not single_run:
        group = _shown(Path(hydra_cfg.sweep.dir), cwd)
        name = f"{hydra_cfg.job.num}: {' '.join(overrides)}" if overrides else str(hydra_cfg.job.num)
    tags = dict(item.split("=", 1) for item in overrides if "=" in item)
    return RunInfo(run_dir=run_dir, run_name=name, group=group, tags=tags, tracking_root=cwd)


def _shown(path: Path, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when below it (``outputs/...``), else as it is."""
    path = path if path.is_absolute() else cwd / path
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def main() -> None:
    """Console-script entry point of ``mtl-train`` (also every rank's entry under torchrun)."""
    sys.argv = [sys.argv[0], *distributed.hydra_overrides(sys.argv[1:])]
    run_cli("mtl-train", hydra_entry)
    distributed.teardown()


if __name__ == "__main__":
    main()
