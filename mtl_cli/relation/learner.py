"""``relation=given|learned``: the regulariser and the affinity measurement, as trainer hooks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig
from torch import Tensor

from mtl_cli.relation.affinity import AffinityTracker, LossFn
from mtl_cli.relation.grouping import format_grouping, suggest_grouping
from mtl_cli.relation.matrix import parse_relation_matrix
from mtl_cli.relation.records import save_heatmap, write_relations_csv
from mtl_cli.relation.regularizer import RelationRegularizer

if TYPE_CHECKING:
    from mtl_cli.models.base import MultiTaskModel

log = logging.getLogger("mtl_cli")

CSV_NAME = "relations.csv"
PNG_NAME = "relations.png"


class TaskRelation:
    """What the trainer calls around each step and at each epoch end.

    ``before_backward`` measures affinity when due; ``after_backward`` adds the
    regulariser's gradient; ``epoch_end`` averages the epoch's measurements, rewrites
    ``relations.csv`` and ``relations.png`` in ``run_dir``, logs the suggested grouping
    and, when both are on, feeds ``max(cosine, 0)`` (zero diagonal) back as the
    regulariser's R.
    """

    def __init__(
        self,
        task_names: list[str],
        regularizer: RelationRegularizer | None,
        tracker: AffinityTracker | None,
        run_dir: Path | None,
    ) -> None:
        self.task_names = task_names
        self.regularizer = regularizer
        self.tracker = tracker
        self.run_dir = run_dir
        self.history: list[tuple[int | str, dict[str, list[list[float]]]]] = []
        self.grouping: list[list[str]] | None = None

    def before_backward(
        self, step: int, images: Tensor, losses: Tensor, loss_fn: LossFn, grad_scale: Tensor | None = None
    ) -> None:
        """Measure the affinity on this batch if ``step`` is due (see ``AffinityTracker.measure``)."""
        if self.tracker is not None and self.tracker.due(step):
            self.tracker.measure(images, losses, loss_fn, grad_scale)

    def after_backward(self, grad_scale: Tensor | None = None) -> None:
        """Add the regulariser's gradient (times the fp16 loss scale, if any)."""
        if self.regularizer is not None:
            self.regularizer.add_gradient(grad_scale)

    def epoch_end(self, epoch: int) -> None:
        if self.tracker is None:
            return
        means = self.tracker.epoch_means()
        if means is None:
            return
        self.history.append((epoch, _as_lists(*means)))
        cosine, lookahead = self.tracker.run_means()
        overall = _as_lists(cosine, lookahead)
        self.grouping = suggest_grouping(overall["lookahead"], self.task_names)
        log.info(
            "task affinity (%d measurements): suggested grouping %s",
            self.tracker.run_count,
            format_grouping(self.grouping),
        )
        if self.run_dir is not None:
            write_relations_csv(self.run_dir / CSV_NAME, self.task_names, [*self.history, ("all", overall)])
            title = f"task affinity, mean of {self.tracker.run_count} measurements (epochs 1-{epoch})"
            save_heatmap(self.run_dir / PNG_NAME, self.task_names, overall, title)
        if self.regularizer is not None:
            self.regularizer.set_matrix(learned_matrix(cosine))

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue the measurements and the coupling exactly."""
        state: dict[str, Any] = {"history": self.history, "grouping": self.grouping}
        if self.regularizer is not None:
            state["matrix"] = self.regularizer.matrix.cpu()
        if self.tracker is not None:
            state["tracker"] = self.tracker.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [(epoch, matrices) for epoch, matrices in state["history"]]
        self.grouping = state["grouping"]
        if self.regularizer is not None and "matrix" in state:
            self.regularizer.set_matrix(state["matrix"])
        if self.tracker is not None and "tracker" in state:
            self.tracker.load_state_dict(state["tracker"])

    def summary(self) -> dict[str, Any]:
        """What summary.json records about the task relations."""
        out: dict[str, Any] = {"tasks": self.task_names}
        if self.regularizer is not None:
            out["lambda"] = self.regularizer.strength
            out["matrix"] = self.regularizer.matrix.tolist()
        if self.tracker is not None:
            out["measurements"] = self.tracker.run_count
            out.update(_as_lists(*self.tracker.run_means()))
            out["grouping"] = self.grouping
        return out


def learned_matrix(cosine: Tensor) -> Tensor:
    """R from measured gradient cosines: negative similarity is no relation; no self-relation."""
    matrix = cosine.clamp_min(0.0)
    matrix.fill_diagonal_(0.0)
    return matrix


def _as_lists(cosine: Tensor, lookahead: Tensor) -> dict[str, list[list[float]]]:
    return {"cosine": cosine.tolist(), "lookahead": lookahead.tolist()}


def build_relation(cfg: DictConfig, model: MultiTaskModel, run_dir: Path | None) -> TaskRelation | None:
    """The run's ``TaskRelation``, or ``None`` when nothing is to be done (``relation=none`` or lambda 0 with given R)."""
    relation = cfg.relation
    mode = relation.name.value
    if mode == "none":
        return None
    names = list(model.task_names)
    strength = float(relation["lambda"])
    matrix = parse_relation_matrix(relation.matrix, names, required=mode == "given")
    regularizer = RelationRegularizer(model, matrix, strength) if strength > 0 else None
    tracker = None
    if mode == "learned":
        lr = relation.lookahead_lr if relation.lookahead_lr is not None else cfg.optim.lr
        tracker = AffinityTracker(model, relation.every_n_steps, lr)
    if regularizer is None and tracker is None:
        log.info("relation.lambda=0: the relation regulariser is off")
        return None
    return TaskRelation(names, regularizer, tracker, run_dir)


__all__ = ["TaskRelation", "build_relation", "learned_matrix"]
