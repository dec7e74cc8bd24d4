"""Weights & Biases: offline unless the user has logged in, one group per sweep, files under the run dir."""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import wandb

from mtl_cli.errors import UserError
from mtl_cli.loggers.base import RunInfo, Scalar, TrackerLogger
from mtl_cli.loggers.config import WandbOptions

MODES = ("online", "offline", "disabled")
MAX_TAG_LENGTH = 64


def logged_in() -> bool:
    """Whether W&B has credentials here (WANDB_API_KEY, or an api.wandb.ai entry in ~/.netrc); no network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def choose_mode(option: str | None) -> str:
    """The option, else WANDB_MODE, else online when logged in and offline otherwise."""
    mode = option or os.environ.get("WANDB_MODE") or ("online" if logged_in() else "offline")
    if mode not in MODES:
        raise UserError(f"logger.wandb.mode={mode!r}: use one of {', '.join(MODES)}")
    return mode


class WandbLogger(TrackerLogger):
    """Logs to a W&B run whose files live in ``<run dir>/wandb``; resuming continues the same run id.

    Console capture and system-stats sampling are off: the run's own log files already hold them.
    """

    name = "wandb"

    def __init__(self, options: WandbOptions) -> None:
        self.options = options
        self.run: Any = None
        self.run_id: str | None = None

    def start(self, run: RunInfo) -> None:
        mode = choose_mode(self.options.mode)
        previous = (run.resume or {}).get("run_id")
        settings = wandb.Settings(console="off", x_disable_stats=True, silent=True, save_code=False)
        self.run = wandb.init(
            project=self.options.project,
            entity=self.options.entity,
            group=run.group,
            name=run.run_name,
            tags=[f"{k}={v}"[:MAX_TAG_LENGTH] for k, v in run.tags.items()],
            config={"override": dict(run.tags)} if run.tags else None,
            dir=str(Path(run.run_dir)),
            mode=mode,
            id=previous,
            resume="allow" if previous else None,
            settings=settings,
        )
        self.run_id = self.run.id

    def _run(self) -> Any:
        if self.run is None:
            raise RuntimeError("W&B logger used before start()")
        return self.run

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        self._run().log({key: float(value) for key, value in values.items()}, step=step)

    def log_hparams(self, params: Mapping[str, Scalar], final_metrics: Mapping[str, float]) -> None:
        run = self._run()
        run.config.update(dict(params), allow_val_change=True)
        run.summary.update({f"final/{key}": float(value) for key, value in final_metrics.items()})

    def log_artifact(self, path: Path, step: int | None = None) -> None:
        path = Path(path).resolve()
        self._run().save(str(path), base_path=str(path.parent), policy="now")

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id else {}

    def close(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None
