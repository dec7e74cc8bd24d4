"""Mixed precision: autocast dtypes, clear errors, and an exact loss-scaling path."""

from __future__ import annotations

import pytest
import torch
from scale_helpers import LearnedLogVariance, build, flat_params
from torch import nn

from mtl_cli.engine.precision import Precision
from mtl_cli.errors import UserError
from mtl_cli.weighting import METHODS

CPU = torch.device("cpu")


def test_fp16_on_cpu_is_a_clear_error():
    with pytest.raises(UserError, match="needs a CUDA GPU.*trainer.precision=bf16"):
        Precision.from_config("16", CPU)
    with pytest.raises(UserError, match="choose one of 32, bf16, 16"):
        Precision.from_config("8", CPU)


@pytest.mark.parametrize(("choice", "dtype"), [("32", torch.float32), ("bf16", torch.bfloat16)])
def test_autocast_dtype_on_cpu(choice, dtype):
    precision = Precision.from_config(choice, CPU)
    layer = nn.Linear(4, 3)
    with precision.autocast():
        out = layer(torch.randn(2, 4))
    assert out.dtype == dtype
    assert layer.weight.dtype == torch.float32  # parameters stay fp32
    assert precision.scaler is None and precision.grad_scale() is None


def test_scale_gradients_keeps_values_and_scales_gradients():
    precision = Precision(CPU, scaler=torch.amp.GradScaler("cpu", init_scale=8.0))
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    losses = x * torch.tensor([3.0, 5.0])
    scaled = precision.scale_gradients(losses)
    assert torch.equal(scaled, losses)  # the weighting sees the true loss values
    scaled.sum().backward()
    assert torch.equal(x.grad, torch.tensor([24.0, 40.0]))  # 8 * d(sum)/dx
    assert float(precision.grad_scale()) == 8.0


def test_loss_scaling_gives_the_unscaled_update_also_for_learned_weights(monkeypatch):
    """With a GradScaler the optimiser step is the fp32 one: network gradients are unscaled,
    and the weighting's own parameters (whose gradients never went through the scaled
    losses) are not divided by the scale."""
    monkeypatch.setitem(METHODS, "test_log_var", LearnedLogVariance)
    overrides = ("weighting.name=test_log_var", "trainer.max_steps=2", "trainer.batch_norm=frozen")
    plain = build(*overrides)
    scaled = build(*overrides)
    scaled.precision = Precision(CPU, scaler=torch.amp.GradScaler("cpu", init_scale=2.0**12))
    plain.train_epoch(1)
    scaled.train_epoch(1)
    assert not torch.equal(plain.weighting.log_var, torch.zeros(2))  # the weights did learn
    torch.testing.assert_close(scaled.weighting.log_var, plain.weighting.log_var, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(flat_params(scaled.model), flat_params(plain.model), rtol=1e-6, atol=1e-7)
    assert scaled.state_dict()["scaler"]["scale"] == 2.0**12  # saved with the checkpoint


def test_precision_state_round_trip():
    source = Precision(CPU, scaler=torch.amp.GradScaler("cpu", init_scale=64.0))
    target = Precision(CPU, scaler=torch.amp.GradScaler("cpu", init_scale=2.0))
    target.load_state_dict(source.state_dict())
    assert target.scaler.get_scale() == 64.0
    assert Precision(CPU).state_dict() is None


def test_bf16_training_on_cpu_autocasts_the_forward():
    trainer = build("trainer.precision=bf16", "trainer.max_steps=2")
    seen = []
    hook = trainer.model.trunk[-1].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    losses, _ = trainer.train_epoch(1)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    reference = build("trainer.max_steps=2")
    reference_losses, _ = reference.train_epoch(1)
    for task, value in reference_losses.items():  # bf16 keeps about 3 significant digits
        assert losses[task] == pytest.approx(value, rel=3e-2)
        assert losses[task] != value
