"""The optimiser step's speed and stability knobs: accumulation, clipping, layout, compile, loaders."""

from __future__ import annotations

import shutil
import time

import pytest
import torch
from scale_helpers import build, flat_params

from mtl_cli.engine.speed import loader_options


def _initial_params(trainer) -> torch.Tensor:
    return flat_params(trainer.model).clone()


def test_accumulating_k_batches_equals_one_batch_k_times_larger():
    # BatchNorm statistics depend on the batch split; frozen statistics take that out. Plain
    # SGD: Adam's division by sqrt(v) would magnify the rounding of the summed micro-batches
    # wherever a gradient is near 0.
    common = ("trainer.batch_norm=frozen", "optim.name=sgd", "optim.lr=0.1", "optim.momentum=0.0")
    big = build(*common, "trainer.batch_size=16")
    accumulated = build(*common, "trainer.batch_size=4", "trainer.accumulate=4")
    small = build(*common, "trainer.batch_size=4")
    for trainer in (big, accumulated, small):
        trainer.train_epoch(1)
    assert big.state.step == accumulated.state.step == 2 and small.state.step == 8
    torch.testing.assert_close(flat_params(accumulated.model), flat_params(big.model), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(flat_params(small.model), flat_params(big.model), atol=1e-4)


def test_a_short_last_group_still_steps():
    trainer = build("data.num_train=48", "trainer.batch_size=8", "trainer.accumulate=4")
    trainer.train_epoch(1)
    assert trainer.state.step == 2  # 6 batches: one group of 4, one of 2


def test_gradient_clipping_caps_the_global_norm_and_keeps_the_direction():
    # Plain SGD with lr 1: the parameter change is minus the (clipped) gradient.
    common = ("optim.name=sgd", "optim.lr=1.0", "optim.momentum=0.0", "trainer.max_steps=1", "weighting=ew")
    free = build(*common)
    clipped = build(*common, "trainer.grad_clip=0.01")
    start = _initial_params(free)
    assert torch.equal(start, _initial_params(clipped))
    free.train_epoch(1)
    clipped.train_epoch(1)
    free_step = flat_params(free.model) - start
    clipped_step = flat_params(clipped.model) - start
    assert free_step.norm() > 0.1  # clipping is active
    assert clipped_step.norm() == pytest.approx(0.01, rel=1e-4)
    torch.testing.assert_close(clipped_step, free_step * (0.01 / free_step.norm()), rtol=1e-3, atol=1e-7)


def test_channels_last_trains_like_contiguous():
    dense = build("trainer.max_steps=2")
    nhwc = build("trainer.max_steps=2", "trainer.channels_last=true")
    conv = nhwc.model.trunk[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    dense_losses, _ = dense.train_epoch(1)
    nhwc_losses, _ = nhwc.train_epoch(1)
    assert nhwc_losses == pytest.approx(dense_losses, rel=1e-5)
    torch.testing.assert_close(flat_params(nhwc.model), flat_params(dense.model), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compile_trains_like_eager():
    """torch.compile with the inductor backend; about 30-60 s of compilation on a small CPU."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile (inductor) needs a C++ compiler on CPU and none is installed")
    eager = build("task=cls", "trainer.max_steps=2")
    compiled = build("task=cls", "trainer.max_steps=2", "trainer.compile=true")
    assert compiled.train_model is not compiled.model and hasattr(compiled.train_model, "_orig_mod")
    started = time.perf_counter()
    compiled_losses, _ = compiled.train_epoch(1)
    print(f"compile + 2 steps: {time.perf_counter() - started:.1f}s")
    eager_losses, _ = eager.train_epoch(1)
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    torch.testing.assert_close(flat_params(compiled.model), flat_params(eager.model), rtol=1e-3, atol=1e-5)
    assert not any(k.startswith("_orig_mod") for k in compiled.state_dict()["model"])


def test_loader_options_for_throughput():
    assert loader_options(0, 2, torch.device("cpu")) == {"num_workers": 0, "pin_memory": False}
    assert loader_options(3, 4, torch.device("cuda")) == {
        "num_workers": 3,
        "pin_memory": True,
        "persistent_workers": True,
        "prefetch_factor": 4,
    }
