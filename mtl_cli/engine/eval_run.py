"""Evaluating a saved checkpoint: rebuild the model from the checkpoint's own config, run a split.

Command-line overrides (``data.root=...``, ``trainer.device=cpu``, ``task=cls+seg``) are
composed with Hydra against the training config, so they are parsed and type-checked like
``mtl-train``'s, then applied on top of the checkpoint's config. Overrides that would change
the model (task set, backbone, architecture) must agree with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.build import build_evaluation
from mtl_cli.engine.checkpoint import load_checkpoint
from mtl_cli.engine.evaluate import evaluate, metric_directions
from mtl_cli.engine.records import config_record
from mtl_cli.engine.resume import MODEL_KEYS, check_fits, resolve_checkpoint, saved_config
from mtl_cli.errors import UserError, one_line

SPLITS = ("val", "train")


@dataclass
class EvalOptions:
    """mtl-eval's own settings (defaults in ``configs/eval.yaml``)."""

    ckpt: str
    split: str = "val"
    output: str | None = None
    overwrite: bool = False

    def output_path(self, checkpoint: Path) -> Path:
        """``output``, else ``<checkpoint stem>.eval-<split>.json`` beside the checkpoint."""
        if self.output:
            return Path(self.output)
        return checkpoint.with_name(f"{checkpoint.stem}.eval-{self.split}.json")


def split_arguments(args: Sequence[str]) -> tuple[EvalOptions, list[str]]:
    """Separate mtl-eval's own ``key=value`` settings from the config overrides."""
    own = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "eval.yaml"))
    assert isinstance(own, dict)
    config_overrides = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in own:
            own[key] = value
        else:
            config_overrides.append(arg)
    if own["ckpt"] in (None, "???", ""):
        raise UserError("no checkpoint given; use mtl-eval ckpt=<run dir or .pt file> [overrides]")
    if own["split"] not in SPLITS:
        raise UserError(f"split={own['split']}: choose one of {', '.join(SPLITS)}")
    overwrite = str(own["overwrite"]).lower()
    if overwrite not in ("true", "false"):
        raise UserError(f"overwrite={own['overwrite']}: give true or false")
    options = EvalOptions(str(own["ckpt"]), str(own["split"]), own["output"] or None, overwrite == "true")
    return options, config_overrides


def _compose_overrides(overrides: Sequence[str]) -> DictConfig:
    """The training config composed with ``overrides`` (parsing and type checks as in mtl-train)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def apply_overrides(saved: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``saved`` with each overridden key taken from the composition.

    A group choice (``task=``, ``data=``, ``backbone=``, ...) that names what the checkpoint
    already uses keeps the checkpoint's settings; naming another replaces the whole section
    (and, for the model's groups, is then refused by the fit check).
    """
    if not overrides:
        return saved
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    for override in parsed:
        if override.is_sweep_override():
            raise UserError(f"{override.input_line}: mtl-eval evaluates one checkpoint; sweeps are not supported")
    saved_task = "task=" + "+".join(saved.tasks.keys())
    has_task = any(o.key_or_group == "task" for o in parsed)
    composed = _compose_overrides(list(overrides) if has_task else [saved_task, *overrides])
    result = OmegaConf.create(config_record(saved))
    for override in parsed:
        key = override.key_or_group
        if key.startswith("hydra."):
            continue
        section = "tasks" if key == "task" else key
        new = OmegaConf.select(composed, section)
        if "." not in key and _same_choice(key, result, new):
            continue
        if key == "task":
            raise UserError(
                f"the checkpoint was trained for task={'+'.join(saved.tasks.keys())}, not "
                f"task={'+'.join(new.keys())}; leave task= out to use its own"
            )
        with open_dict(result):
            OmegaConf.update(result, section, new, merge=False)
    return validate(result)


def _same_choice(group: str, saved: DictConfig, chosen: Any) -> bool:
    """Whether a group choice names what the checkpoint already has (same task set, same ``name``)."""
    if group == "task":
        return list(chosen.keys()) == list(saved.tasks.keys())
    current = saved.get(group)
    return isinstance(chosen, DictConfig) and current is not None and chosen.get("name") == current.get("name")


def evaluate_checkpoint(options: EvalOptions, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Evaluate ``options.ckpt`` on ``options.split``; return the JSON-ready result."""
    path = resolve_checkpoint(options.ckpt, key="ckpt")
    state = load_checkpoint(path)
    cfg = apply_overrides(saved_config(state, path), overrides)
    check_fits(state, path, cfg, MODEL_KEYS, "leave task=, backbone= and arch= out to use the checkpoint's own")
    cfg.backbone.pretrained = cfg.backbone.weights = None  # the weights come from the checkpoint
    setup = build_evaluation(cfg, options.split)
    try:
        setup.model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        raise UserError(
            f"checkpoint {path} does not fit the model built from its config: {one_line(str(exc))[:300]}"
        ) from exc
    metrics = evaluate(setup.model, setup.loader, setup.tasks, setup.device)
    return {
        "checkpoint": str(path),
        "epoch": state.get("train_state", {}).get("epoch"),
        "split": options.split,
        "images": len(setup.loader.dataset),  # type: ignore[arg-type]
        "metrics": metrics,
        "metric_directions": metric_directions(setup.tasks),
        "overrides": list(overrides),
        "device": str(setup.device),
    }
