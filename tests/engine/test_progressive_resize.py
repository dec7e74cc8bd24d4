"""Progressive resizing: smaller inputs in the first epochs, outputs scored at the label size."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from scale_helpers import build, compose_config

from mtl_cli.config.schema import DEFAULT_PROGRESSIVE_RESIZE
from mtl_cli.engine.resolution import ProgressiveResize
from mtl_cli.errors import UserError
from mtl_cli.tasks import task_kind


def test_scale_per_epoch_and_resized_size():
    resize = ProgressiveResize([0.5, 0.75])
    assert [resize.scale(e) for e in (1, 2, 3, 10)] == [0.5, 0.75, 1.0, 1.0]
    images = torch.rand(2, 3, 48, 64)
    assert resize.resize(images, 0.5).shape == (2, 3, 24, 32)
    assert resize.resize(images, 0.625).shape == (2, 3, 30, 40)
    assert resize.resize(images, 1.0) is images
    flat = torch.full((1, 3, 64, 64), 0.25)  # antialiased bilinear keeps a constant image constant
    torch.testing.assert_close(resize.resize(flat, 0.5), torch.full((1, 3, 32, 32), 0.25))


def test_no_input_is_shrunk_below_the_minimum_size():
    resize = ProgressiveResize([0.5], min_size=32)
    assert resize.resize(torch.rand(1, 3, 64, 64), 0.25).shape == (1, 3, 32, 32)
    assert resize.resize(torch.rand(1, 3, 48, 64), 0.5).shape == (1, 3, 32, 43)  # shorter side 32
    small = torch.rand(1, 3, 28, 28)  # already below the minimum: kept as loaded
    assert resize.resize(small, 0.5) is small


def test_dense_outputs_are_brought_to_the_label_size_and_image_level_outputs_kept():
    seg = task_kind("seg", "seg")("seg", {"num_classes": 5})
    cls = task_kind("cls", "cls")("cls", {"num_classes": 4})
    out = torch.randn(2, 5, 16, 16)
    up = seg.prediction_at(out, (32, 32))
    assert up.shape == (2, 5, 32, 32)
    torch.testing.assert_close(up, F.interpolate(out, size=(32, 32), mode="bilinear", align_corners=False))
    assert seg.prediction_at(up, (32, 32)) is up
    logits = torch.randn(2, 4)
    assert cls.prediction_at(logits, (32, 32)) is logits


def test_the_model_sees_the_scaled_inputs_in_training_and_full_inputs_in_validation():
    trainer = build("trainer.epochs=2", "trainer.progressive_resize=[0.5]", "trainer.progressive_resize_min_size=1")
    sizes: list[tuple[int, int]] = []
    trainer.model.register_forward_pre_hook(lambda _, args: sizes.append(tuple(args[0].shape[-2:])))
    losses, _ = trainer.train_epoch(1)
    assert set(sizes) == {(16, 16)} and all(torch.isfinite(torch.tensor(list(losses.values()))))
    sizes.clear()
    trainer.train_epoch(2)
    assert set(sizes) == {(32, 32)}
    sizes.clear()
    trainer.fit()  # validates after every epoch
    assert (32, 32) in sizes


def test_a_half_size_epoch_trains_on_full_size_labels_like_a_plain_step_on_resized_images():
    """The loss of a resized epoch is the task loss of the upsampled output against the unchanged labels."""
    trainer = build(
        "trainer.progressive_resize=[0.5]",
        "trainer.progressive_resize_min_size=1",
        "trainer.max_steps=1",
        "weighting=ew",
    )
    batch = next(iter(trainer._epoch_loader(1)))  # the first batch of epoch 1
    model = trainer.model
    model.train()
    with torch.no_grad():
        state = {k: v.clone() for k, v in model.state_dict().items()}
        preds = model(F.interpolate(batch["image"], size=(16, 16), mode="bilinear", antialias=True))
        expected = [
            task.loss(task.prediction_at(preds[task.name], (32, 32)), batch[task.name]) for task in trainer.tasks
        ]
    model.load_state_dict(state)  # undo the BatchNorm statistics of the reference forward
    losses, _ = trainer.train_epoch(1)
    assert [losses[t.name] for t in trainer.tasks] == pytest.approx([float(v) for v in expected], rel=1e-5)


def test_detection_runs_at_full_size_and_the_log_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="mtl_cli"):
        trainer = build("task=cls+det")
    assert trainer.resize.scales == [] and trainer.resize.scale(1) == 1.0
    assert "progressive_resize is off for this run: task det" in caplog.text


def test_the_default_ramp_and_bad_scales():
    cfg = compose_config()
    assert list(cfg.trainer.progressive_resize) == list(DEFAULT_PROGRESSIVE_RESIZE) == [0.5, 0.625, 0.75, 0.875]
    assert cfg.trainer.progressive_resize_min_size == 32
    assert list(compose_config("trainer.progressive_resize=[]").trainer.progressive_resize) == []
    for bad in ("[0,1]", "[1.5]", "[-0.5]"):
        with pytest.raises(UserError, match=r"progressive_resize=.*every input scale must be in \(0, 1\]"):
            compose_config(f"trainer.progressive_resize={bad}")
    with pytest.raises(UserError, match="progressive_resize_min_size=0: must be a positive integer"):
        compose_config("trainer.progressive_resize_min_size=0")


def test_the_epoch_line_shows_the_trained_input_size(caplog):
    """32 px scenes with the default minimum: no epoch is resized; at 64 px epochs 1, 2 are 32 and 40 px."""
    for size, expected in ((32, [None, None]), (64, ["inputs 32x32", "inputs 40x40"])):
        trainer = build(f"data.image_size={size}", "trainer.epochs=2")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="mtl_cli"):
            trainer.fit()
        lines = [r.getMessage().splitlines()[0] for r in caplog.records if r.getMessage().startswith("epoch ")]
        assert len(lines) == 2
        for line, shown in zip(lines, expected):
            assert (shown in line) if shown else ("inputs" not in line), line
