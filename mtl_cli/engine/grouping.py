"""``arch=grouped`` with ``groups=auto`` or ``groups=from:<run dir>``: the groups, decided before the build.

``auto`` trains the all-shared model (one group) for ``arch.warmup_steps`` steps while
measuring the task affinity (``relation=learned`` machinery, every step), picks the
grouping with the relation search, and writes the measured matrices to
``warmup_relations.csv`` / ``warmup_relations.png``. ``from:<run dir>`` reads the grouping
a ``relation=learned`` run suggested (its summary.json, else its relations.csv). Either
way the explicit groups replace ``arch.groups`` in the config (and in the run's
``.hydra/config.yaml``), so the checkpoints and the saved config reproduce the run.
A resumed run takes the groups from its checkpoint instead of measuring again.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mtl_cli.engine import distributed
from mtl_cli.engine.build import build_trainer
from mtl_cli.engine.checkpoint import load_checkpoint
from mtl_cli.engine.resume import resolve_checkpoint
from mtl_cli.errors import UserError
from mtl_cli.models.architectures.grouped import parse_groups
from mtl_cli.relation.grouping import format_grouping, suggest_grouping
from mtl_cli.relation.records import save_heatmap, write_relations_csv

log = logging.getLogger("mtl_cli")

AUTO = "auto"
FROM = "from:"
CSV_NAME = "warmup_relations.csv"
PNG_NAME = "warmup_relations.png"


def needs_resolving(cfg: DictConfig) -> bool:
    """Whether ``cfg`` is ``arch=grouped`` with groups still to be decided (``auto`` or ``from:``)."""
    groups = cfg.arch.get("groups")
    return cfg.arch.name == "grouped" and isinstance(groups, str) and (groups == AUTO or groups.startswith(FROM))


def resolve_groups(cfg: DictConfig, run_dir: Path | None) -> dict[str, Any] | None:
    """Replace ``arch.groups=auto|from:<dir>`` in ``cfg`` by the explicit groups; return what summary.json records.

    ``None`` (and ``cfg`` untouched) for any other config. Every rank gets rank 0's groups.
    """
    if not needs_resolving(cfg):
        return None
    spec = str(cfg.arch.groups)
    task_names = list(cfg.tasks.keys())
    if cfg.trainer.resume:
        record: dict[str, Any] = {"source": "checkpoint", "requested": spec, **_from_checkpoint(cfg.trainer.resume)}
    elif spec == AUTO:
        record = {"source": AUTO, **_measure(cfg, run_dir)}
    else:
        record = {"source": spec, **_from_run(Path(spec[len(FROM) :]).expanduser(), task_names)}
    record = distributed.broadcast_object(record)
    record["groups"] = parse_groups(record["groups"], task_names)
    with open_dict(cfg.arch):
        cfg.arch.groups = record["groups"]
    log.info("arch=grouped: groups %s (%s)", format_grouping(record["groups"]), record["source"])
    if run_dir is not None and distributed.current().is_main:
        _rewrite_saved_config(run_dir / ".hydra" / "config.yaml", record["groups"])
    return record


def _measure(cfg: DictConfig, run_dir: Path | None) -> dict[str, Any]:
    """Warm up the all-shared model, measuring affinity every step; the suggested groups and the cost."""
    steps = int(cfg.arch.warmup_steps)
    if steps < 1:
        raise UserError(f"arch.warmup_steps={steps}: groups=auto needs at least one warm-up step")
    warm = copy.deepcopy(cfg)
    with open_dict(warm):
        warm.arch.groups = [list(cfg.tasks.keys())]  # one group: the all-shared model,
        warm.arch.branch_at = None  # its whole backbone the trunk, so the affinity is measured on all of it
        warm.relation.name = "learned"
        warm.relation.every_n_steps = 1
        warm.relation["lambda"] = 0.0
        warm.trainer.max_steps = steps
        warm.trainer.epochs = max(int(cfg.trainer.epochs), steps)  # enough epochs to reach max_steps
        warm.trainer.progress = False
    started = time.perf_counter()
    trainer = build_trainer(warm, run_dir=None)
    state = trainer.fit()
    seconds = time.perf_counter() - started
    relation = trainer.relation
    assert relation is not None and relation.tracker is not None and relation.grouping is not None
    cosine, lookahead = relation.tracker.run_means()
    affinity = {"cosine": cosine.tolist(), "lookahead": lookahead.tolist()}
    names = relation.task_names
    if run_dir is not None and distributed.current().is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_relations_csv(run_dir / CSV_NAME, names, [("all", affinity)])
        title = f"warm-up task affinity, mean of {relation.tracker.run_count} measurements ({state.step} steps)"
        save_heatmap(run_dir / PNG_NAME, names, affinity, title)
    log.info("groups=auto: %d warm-up steps in %.1fs", state.step, seconds)
    return {
        "groups": relation.grouping,
        "warmup_steps": state.step,
        "warmup_seconds": seconds,
        "measurements": relation.tracker.run_count,
        "affinity": affinity,
    }


def _from_run(run: Path, task_names: list[str]) -> dict[str, Any]:
    """The grouping a ``relation=learned`` run suggested: summary.json's, else from its relations.csv."""
    summary = run / "summary.json"
    if summary.is_file():
        grouping = (json.loads(summary.read_text()).get("relations") or {}).get("grouping")
        if grouping:
            return {"groups": grouping}
    table = run / "relations.csv"
    if not table.is_file():
        raise UserError(f"arch.groups=from:{run}: no suggested grouping there (train it with relation=learned)")
    with table.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["epoch"] == "all" and r["measure"] == "lookahead"]
    measured = [r["task"] for r in rows]
    if sorted(measured) != sorted(task_names):
        raise UserError(
            f"arch.groups=from:{run}: that run measured {', '.join(measured)}, this run trains {', '.join(task_names)}"
        )
    affinity = [[float(r[t]) for t in measured] for r in rows]
    return {"groups": suggest_grouping(affinity, measured)}


def _from_checkpoint(target: str) -> dict[str, Any]:
    """The groups a resumed run was built with (its checkpoint's config)."""
    path = resolve_checkpoint(target)
    saved = OmegaConf.create(load_checkpoint(path).get("config") or "{}")
    groups = OmegaConf.select(saved, "arch.groups")
    if groups is None or isinstance(groups, str):
        raise UserError(f"checkpoint {path} does not record explicit arch.groups; it was not an arch=grouped run")
    return {"groups": OmegaConf.to_container(groups)}


def _rewrite_saved_config(path: Path, groups: list[list[str]]) -> None:
    """Put the explicit groups into the run's saved config, so ``--config-dir <run>/.hydra`` reproduces it."""
    if not path.is_file():
        return
    saved = OmegaConf.load(path)
    saved.arch.groups = groups
    OmegaConf.save(saved, path)


__all__ = ["resolve_groups", "needs_resolving"]
