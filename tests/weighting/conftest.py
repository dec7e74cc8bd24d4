"""A tiny cls+seg model and batch, and one training step the way the trainer runs it."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
from hydra import compose, initialize_config_dir

from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.build import build_components
from mtl_cli.models import MultiTaskModel
from mtl_cli.tasks import Task
from mtl_cli.weighting import StepContext, Weighting

register_configs()

TINY = [
    "data.num_train=16",
    "data.num_val=8",
    "data.image_size=32",
    "trainer.batch_size=8",
    "backbone.width=8",
    "trainer.progress=false",
]

GRADIENT_METHODS = ["mgda", "pcgrad", "gradvac", "cagrad", "imtl", "nash_mtl", "aligned_mtl", "upgrad"]
LOSS_METHODS = ["ew", "fixed", "uw", "dwa", "rlw", "gls", "famo"]
# Every method in every mode it supports: (name, weighting.* options).
METHOD_MODES = (
    [(name, {}) for name in LOSS_METHODS]
    + [(name, {"grad_on": on}) for name in [*GRADIENT_METHODS, "gradnorm"] for on in ("params", "features")]
    + [("db_mtl", {"grad_on": "params"})]
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy machine each OpenMP
    region can wait milliseconds for a core; restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return validate(compose("train", overrides=[*TINY, *overrides]))


@dataclass
class Setup:
    model: MultiTaskModel
    tasks: list[Task]
    images: torch.Tensor
    batch: dict

    def fresh_model(self) -> MultiTaskModel:
        return copy.deepcopy(self.model)

    def losses(self, model: MultiTaskModel, return_features: bool = False):
        preds, features = model(self.images, return_features=True)
        losses = [task.loss(preds[task.name], self.batch[task.name]) for task in self.tasks]
        return (losses, features) if return_features else losses


@pytest.fixture(scope="module")
def setup() -> Setup:
    parts = build_components(compose_config("task=cls+seg"))
    batch = next(iter(parts.train_loader))
    return Setup(parts.model, parts.tasks, batch["image"], batch)


def train_step(method: Weighting, model: MultiTaskModel, setup: Setup, step: int = 0) -> torch.Tensor:
    """Forward, losses, ``method.backward`` with the context the trainer builds; returns the weights."""
    model.zero_grad(set_to_none=True)
    losses, features = setup.losses(model, return_features=True)
    shared = model.shared_parameters()
    ids = {id(p) for p in shared}
    task_params = [p for p in model.parameters() if id(p) not in ids]
    ctx = StepContext(
        shared, features if method.needs_features else None, step, 1, task_losses=losses, task_params=task_params
    )
    return method.backward(torch.stack(losses), ctx)
