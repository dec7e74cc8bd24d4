"""One training step of every method in every mode: who gets which gradient."""

from __future__ import annotations

import pytest
import torch

from mtl_cli.engine.build import build_components
from mtl_cli.engine.precision import _ScaleGradient
from mtl_cli.errors import UserError
from mtl_cli.weighting import METHODS, GradientWeighting, StepContext, build_weighting
from mtl_cli.weighting.db_mtl import DBMTL
from mtl_cli.weighting.gradients import TaskGradients

from .conftest import METHOD_MODES, Setup, compose_config, train_step


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def per_task_grads(losses, inputs) -> torch.Tensor:
    return torch.stack([flat(torch.autograd.grad(loss, inputs, retain_graph=True)) for loss in losses])


def reference(method, setup: Setup, model):
    """What the step must produce, computed independently on a copy of the model before the step."""
    ref = setup.fresh_model()
    ref.load_state_dict(model.state_dict())
    raw, features = setup.losses(ref, return_features=True)
    differentiated = method.transform(raw) if isinstance(method, GradientWeighting) else raw
    shared = ref.shared_parameters()
    heads = [ref.task_parameters(t.name) for t in setup.tasks]
    return {
        "params": per_task_grads(differentiated, shared),
        "features": per_task_grads(differentiated, [features]),
        "heads": [
            flat(torch.autograd.grad(loss, head, retain_graph=True)) for loss, head in zip(differentiated, heads)
        ],
        "features_tensor": features,
        "shared": shared,
    }


def test_every_method_has_a_mode_here():
    assert {name for name, _ in METHOD_MODES} == set(METHODS)


@pytest.mark.parametrize(
    "name, options", METHOD_MODES, ids=[f"{n}-{o.get('grad_on', 'loss')}" for n, o in METHOD_MODES]
)
def test_one_step_gives_every_parameter_the_right_gradient(setup, name, options):
    model = setup.fresh_model()
    names = [t.name for t in setup.tasks]
    static = [2.0, 0.5] if name in ("ew", "fixed") else [1.0, 1.0]
    method = build_weighting(name, names, static, {"name": name, **options})
    expected = reference(method, setup, model)
    weights = train_step(method, model, setup).detach()
    assert weights.shape == (2,) and torch.isfinite(weights).all()
    if name in ("ew", "fixed"):
        assert weights.tolist() == [2.0, 0.5]

    # Every shared parameter has a finite gradient, and it is the combination the method chose.
    shared = model.shared_parameters()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in shared)
    got = flat([p.grad for p in shared])
    assert got.abs().sum() > 0
    gradient_method = isinstance(method, GradientWeighting)
    if gradient_method and method.needs_features:
        combined = weights @ expected["features"]
        want = flat(
            torch.autograd.grad(
                expected["features_tensor"], expected["shared"], combined.view_as(expected["features_tensor"])
            )
        )
    else:
        basis = method.average if isinstance(method, DBMTL) else expected["params"]
        want = weights @ basis
    torch.testing.assert_close(got, want, rtol=2e-4, atol=1e-6)

    # Task-specific parameters: their own task's gradient (unweighted for gradient methods).
    for i, task in enumerate(setup.tasks):
        head = model.task_parameters(task.name)
        assert all(p.grad is not None for p in head)
        scale = 1.0 if gradient_method else weights[i]
        torch.testing.assert_close(flat([p.grad for p in head]), scale * expected["heads"][i], rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["uw", "imtl", "gradnorm"])
def test_learned_method_parameters_get_their_gradient(setup, name):
    model = setup.fresh_model()
    method = build_weighting(name, ["cls", "seg"], [1.0, 1.0], {"name": name})
    with torch.no_grad():
        losses = torch.stack(setup.losses(setup.fresh_model()))
    train_step(method, model, setup)
    (param,) = [p for p in method.parameters() if p.requires_grad]
    assert param.grad is not None and torch.isfinite(param.grad).all()
    if name == "uw":  # d/ds_i [exp(-s_i) L_i + s_i] at s = 0
        torch.testing.assert_close(param.grad, 1.0 - losses, rtol=1e-4, atol=1e-6)
    if name == "imtl":  # d/ds_i [exp(s_i) L_i - s_i] at s = 0
        torch.testing.assert_close(param.grad, losses - 1.0, rtol=1e-4, atol=1e-6)


def test_loop_and_batched_per_task_gradients_agree(setup):
    results = []
    for batched in (False, True):
        model = setup.fresh_model()
        losses = setup.losses(model)
        shared = model.shared_parameters()
        heads = [p for t in setup.tasks for p in model.task_parameters(t.name)]
        grads = TaskGradients(batched=batched).compute(losses, shared, heads, retain_graph=False)
        results.append((grads.clone(), flat([p.grad for p in heads])))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-7)


def test_buffer_is_reused_across_steps(setup):
    method = build_weighting("pcgrad", ["cls", "seg"], [1.0, 1.0], {"name": "pcgrad"})
    model = setup.fresh_model()
    train_step(method, model, setup)
    first = method.gradients.buffer
    train_step(method, model, setup, step=1)
    assert method.gradients.buffer is first
    assert method.last_cosine is not None and method.last_cosine.shape == (2, 2)
    report = method.step_report(1)
    assert list(report) == ["cos/cls~seg"] and -1.0 <= report["cos/cls~seg"] <= 1.0


@pytest.mark.parametrize("grad_on", ["params", "features"])
def test_nash_between_solves_reuses_weights_with_one_backward(setup, grad_on):
    options = {"name": "nash_mtl", "update_weights_every": 2, "grad_on": grad_on}
    method = build_weighting("nash_mtl", ["cls", "seg"], [1.0, 1.0], options)
    model = setup.fresh_model()
    first = train_step(method, model, setup, step=0)
    expected = reference(method, setup, model)
    second = train_step(method, model, setup, step=1)
    assert int(method.solves) == 1  # step 1 did not solve
    # sum_i a_i dL_i on the shared parameters, however it was computed
    torch.testing.assert_close(
        flat([p.grad for p in model.shared_parameters()]), second @ expected["params"], rtol=2e-4, atol=1e-6
    )
    for i, task in enumerate(setup.tasks):
        torch.testing.assert_close(flat([p.grad for p in model.task_parameters(task.name)]), expected["heads"][i])
    unclipped = method.last_weights
    assert torch.allclose(second / second.sum(), unclipped / unclipped.sum())
    assert torch.isfinite(first).all()
    assert method.summary_extras() == {"nash_mtl": {"solves": 1, "solve_failures": 0}}


ARCHS = ["shared_layers", "shared_weights", "mtan", "cross_stitch", "mmoe"]


@pytest.fixture(scope="module")
def arch_setups() -> dict[str, Setup]:
    setups = {}
    for arch in ARCHS:
        parts = build_components(compose_config("task=cls+seg", f"arch={arch}"))
        batch = next(iter(parts.train_loader))
        setups[arch] = Setup(parts.model, parts.tasks, batch["image"], batch)
    return setups


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_trains_with_parameter_gradients(arch_setups, arch):
    setup = arch_setups[arch]
    method = build_weighting("upgrad", ["cls", "seg"], [1.0, 1.0], {"name": "upgrad", "grad_on": "params"})
    model = setup.fresh_model()
    train_step(method, model, setup)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.shared_parameters())


@pytest.mark.parametrize(
    "arch, lost",
    [("shared_layers", False), ("shared_weights", False), ("mtan", True), ("cross_stitch", True), ("mmoe", True)],
)
@pytest.mark.parametrize("name", ["mgda", "gradnorm"])
def test_features_mode_refuses_models_whose_shared_parameters_bypass_the_representation(arch_setups, arch, lost, name):
    """MTAN's attention reads inner encoder stages, cross-stitch units mix the task columns,
    MMoE's gates read the input: their shared parameters also reach the losses by other paths."""
    setup = arch_setups[arch]
    method = build_weighting(name, ["cls", "seg"], [1.0, 1.0], {"name": name, "grad_on": "features"})
    model = setup.fresh_model()
    if lost:
        with pytest.raises(UserError, match=r"grad_on=features: \d+% of the shared parameters' gradient does not pass"):
            train_step(method, model, setup)
    else:
        train_step(method, model, setup)
        assert all(p.grad is not None for p in model.shared_parameters())


def test_features_mode_needs_a_representation(setup):
    method = build_weighting("mgda", ["cls", "seg"], [1.0, 1.0], {"name": "mgda", "grad_on": "features"})
    model = setup.fresh_model()
    losses = setup.losses(model)
    ctx = StepContext(model.shared_parameters(), None, 0, 1, task_losses=losses)
    with pytest.raises(UserError, match="returned no shared representation"):
        method.backward(torch.stack(losses), ctx)


@pytest.mark.parametrize(
    "name, options", METHOD_MODES, ids=[f"{n}-{o.get('grad_on', 'loss')}" for n, o in METHOD_MODES]
)
def test_state_survives_a_checkpoint_round_trip(setup, name, options):
    method = build_weighting(name, ["cls", "seg"], [1.0, 1.0], {"name": name, **options})
    train_step(method, setup.fresh_model(), setup)
    method.epoch_end(torch.tensor([1.0, 2.0]))
    restored = build_weighting(name, ["cls", "seg"], [1.0, 1.0], {"name": name, **options})
    restored.load_state_dict(method.state_dict())
    for key, value in method.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key


@pytest.mark.parametrize("name", ["db_mtl", "nash_mtl", "cagrad", "mgda", "gradnorm"])
def test_fp16_loss_scale_multiplies_the_gradients_and_nothing_else(setup, name):
    """With a loss scale s the methods must see true gradients: the step's gradients come out times s."""
    scale = torch.tensor(1024.0)
    results = []
    for grad_scale in (None, scale):
        method = build_weighting(name, ["cls", "seg"], [1.0, 1.0], {"name": name})
        model = setup.fresh_model()
        losses, features = setup.losses(model, return_features=True)
        if grad_scale is not None:
            losses = [_ScaleGradient.apply(loss, grad_scale) for loss in losses]
        shared = model.shared_parameters()
        heads = [p for t in setup.tasks for p in model.task_parameters(t.name)]
        ctx = StepContext(
            shared,
            features if method.needs_features else None,
            0,
            1,
            grad_scale=grad_scale,
            task_losses=losses,
            task_params=heads,
        )
        weights = method.backward(torch.stack(losses), ctx)
        own = [p.grad.clone() for p in method.parameters() if p.requires_grad]
        results.append((weights, flat([p.grad for p in model.parameters()]), own))
    (w1, g1, own1), (w2, g2, own2) = results
    torch.testing.assert_close(w2, w1)
    torch.testing.assert_close(g2, scale * g1, rtol=1e-4, atol=1e-5)
    for a, b in zip(own1, own2):  # GradNorm's weights get their true gradient
        torch.testing.assert_close(b, a)
