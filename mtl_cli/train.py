"""``mtl-train``: compose the Hydra config, validate it, train one run (or a sweep with -m)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hydra.types import RunMode

from mtl_cli.cli import exit_on_user_error, run_cli
from mtl_cli.config import register_configs, validate
from mtl_cli.engine import distributed
from mtl_cli.engine.run import train_run

register_configs()


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> float | None:
    """Hydra task function: one training run in Hydra's run (or sweep job) directory."""
    hydra_cfg = HydraConfig.get()
    single_run = hydra_cfg.mode == RunMode.RUN
    with exit_on_user_error("mtl-train", single_run=single_run), distributed.name_failing_rank("mtl-train"):
        typed = validate(cfg)
        summary = train_run(typed, Path(hydra_cfg.runtime.output_dir), overrides=list(hydra_cfg.overrides.task))
    monitored = summary.get("best_metrics", {})
    task, _, metric = str(summary.get("monitor", "")).partition(".")
    return monitored.get(task, {}).get(metric)


def main() -> None:
    """Console-script entry point of ``mtl-train`` (also every rank's entry under torchrun)."""
    sys.argv = [sys.argv[0], *distributed.hydra_overrides(sys.argv[1:])]
    run_cli("mtl-train", hydra_entry)
    distributed.teardown()


if __name__ == "__main__":
    main()
