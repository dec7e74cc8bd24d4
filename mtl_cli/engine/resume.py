"""Continuing a run from a checkpoint (``trainer.resume=``) and checking a checkpoint fits a config.

A resumed run is a new run directory: it starts with the metrics.csv rows (restored with
the train state), weights.csv rows and best checkpoint of the run it continues, so the
earlier directory is never written to.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtl_cli.commands import resume_command
from mtl_cli.config import validate
from mtl_cli.engine.checkpoint import load_checkpoint
from mtl_cli.engine.records import config_record
from mtl_cli.engine.trainer import Trainer
from mtl_cli.errors import UserError, one_line
from mtl_cli.utils.files import MetricsLog, atomic_copy
from mtl_cli.utils.mappings import flatten_dict, key_under

log = logging.getLogger("mtl_cli")

# Config keys that decide the shape of the model: a checkpoint only loads into the same ones
# (``backbone.pretrained`` only initialises weights that the checkpoint replaces).
MODEL_KEYS = ("tasks", "backbone.name", "backbone.width", "arch")
# Training additionally needs the same optimiser and weighting-method state layout.
TRAINING_KEYS = (*MODEL_KEYS, "weighting.name", "optim.name")
# Keys that may legitimately differ between a run and its continuation without a warning.
RESUME_IGNORED = ("trainer.resume", "trainer.progress", "trainer.log_every_n_steps", "trainer.num_workers", "logger")


def resolve_checkpoint(target: str | Path, key: str = "trainer.resume") -> Path:
    """A run directory stands for its ``checkpoints/last.pt``; a file is taken as it is."""
    path = Path(target).expanduser()
    if path.is_dir():
        last = path / "checkpoints" / "last.pt"
        if not last.is_file():
            raise UserError(
                f"{key}={target}: the directory has no checkpoints/last.pt (the run ended before its first "
                f"checkpoint); give a run directory that has one, or a .pt file"
            )
        return last
    if not path.is_file():
        raise UserError(f"{key}={target} does not exist; give a run directory or a checkpoint file")
    return path


def saved_config(state: Mapping[str, Any], path: Path) -> DictConfig:
    """The validated config stored in a checkpoint."""
    text = state.get("config")
    if not isinstance(text, str):
        raise UserError(f"checkpoint {path} does not hold the config it was trained with; it cannot be rebuilt")
    try:
        return validate(OmegaConf.create(text))
    except UserError as exc:
        raise UserError(f"checkpoint {path} holds a config this version cannot use: {exc}") from exc


def flatten_config(cfg: DictConfig) -> dict[str, Any]:
    """``{"optim.lr": 0.001, "tasks.cls.kind": "cls", ...}`` with enums as their names."""
    return flatten_dict(config_record(cfg))


def config_differences(
    saved: DictConfig, wanted: DictConfig, keys: Sequence[str] | None = None, ignore: Sequence[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, wanted value)}`` for every differing key (under ``keys`` when given)."""
    a, b = flatten_config(saved), flatten_config(wanted)
    diff = {}
    for key in sorted(set(a) | set(b), key=lambda k: (k not in a, k)):
        if (keys is not None and not key_under(key, keys)) or key_under(key, ignore):
            continue
        if a.get(key) != b.get(key):
            diff[key] = (a.get(key), b.get(key))
    return diff


def describe_mismatch(saved: DictConfig, wanted: DictConfig, diff: Mapping[str, tuple[Any, Any]]) -> str:
    """Name what differs: the task set first, else up to four keys with both values."""
    saved_tasks, wanted_tasks = list(saved.tasks.keys()), list(wanted.tasks.keys())
    if saved_tasks != wanted_tasks:
        return f"it was trained for task={'+'.join(saved_tasks)}, not task={'+'.join(wanted_tasks)}"
    shown = [f"{key}={old} (asked: {new})" for key, (old, new) in list(diff.items())[:4]]
    more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
    return "it was trained with " + ", ".join(shown) + more


def check_fits(state: Mapping[str, Any], path: Path, wanted: DictConfig, keys: Sequence[str], hint: str) -> DictConfig:
    """The checkpoint's config; ``UserError`` naming the mismatch when its ``keys`` differ from ``wanted``.

    The dataset facts of the run's tasks (``data.tasks.<task>``, e.g. the number of classes)
    are always compared, since they size the heads.
    """
    saved = saved_config(state, path)
    data_keys = [f"data.tasks.{name}" for name in saved.tasks]
    diff = config_differences(saved, wanted, [*keys, *data_keys])
    if diff:
        raise UserError(
            f"checkpoint {path} does not match the config: {describe_mismatch(saved, wanted, diff)}; {hint}"
        )
    return saved


@dataclass
class ResumePoint:
    """A loaded checkpoint to continue from, already checked against the run's config."""

    path: Path
    state: dict[str, Any]

    @classmethod
    def load(cls, cfg: DictConfig) -> ResumePoint:
        """Load ``cfg.trainer.resume``; refuse checkpoints of another model, task set or optimiser."""
        path = resolve_checkpoint(cfg.trainer.resume)
        state = load_checkpoint(path)
        saved = saved_config(state, path)
        original = [str(o) for o in state.get("overrides", [])]
        hint = (
            f"resume with the run's own overrides: {resume_command(original, path)}"
            if original
            else "resume with the overrides the run was started with"
        )
        check_fits(state, path, cfg, TRAINING_KEYS, hint)
        other = config_differences(saved, cfg, ignore=RESUME_IGNORED)
        if other:
            log.warning(
                "resuming with settings that differ from the checkpoint's (the result will not equal an "
                "uninterrupted run): %s",
                ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in other.items()),
            )
        return cls(path, state)

    @property
    def epoch(self) -> int:
        return int(self.state["train_state"]["epoch"])

    def apply(self, trainer: Trainer) -> None:
        """Load the checkpoint into ``trainer`` and carry over the run's records into its ``run_dir``."""
        try:
            trainer.load_state_dict(self.state)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise UserError(
                f"checkpoint {self.path} does not fit the model built from its config: {one_line(str(exc))[:300]}"
            ) from exc
        if trainer.run_dir is not None:
            self._carry_best(trainer.run_dir / "checkpoints" / "best.pt")
            self._carry_weight_rows(trainer.run_dir / "weights.csv")
        progress = self.state.get("epoch_progress")
        where = f"epoch {self.epoch}" + (f" + {progress['batches']} batches" if progress else "")
        log.info("resuming from %s (%s)", self.path, where)

    def _carry_weight_rows(self, target: Path) -> None:
        """The continued run's ``weights.csv`` rows up to the checkpoint's step (when its folder is known)."""
        source = self.path.parent.parent / "weights.csv"
        if not source.is_file():
            return
        rows = MetricsLog(target)
        step = int(self.state["train_state"]["step"])
        with source.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if int(row["step"]) <= step:
                    rows.append(row)

    def _carry_best(self, target: Path) -> None:
        """Copy the continued run's best checkpoint, so best.pt stays right if no later epoch beats it."""
        best_epoch = self.state["train_state"].get("best_epoch")
        if best_epoch is None:
            return
        if best_epoch == self.epoch and "epoch_progress" not in self.state:
            atomic_copy(self.path, target)
            return
        sibling = self.path.parent / "best.pt"
        if sibling.is_file() and sibling != self.path:
            try:
                found = load_checkpoint(sibling)["train_state"].get("epoch")
            except (UserError, KeyError):
                found = None
            if found == best_epoch:
                atomic_copy(sibling, target)
                return
        log.warning(
            "best.pt of epoch %s was not found beside %s; best.pt will be written when an epoch improves on it",
            best_epoch,
            self.path,
        )
