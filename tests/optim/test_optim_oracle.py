"""Every optimizer over 20 steps, with clipping by norm and weight decay, against torch.optim and
torch.nn.utils.clip_grad_norm_ on the same parameters and gradients (float32).

Tolerance: relative error ‖w − w_torch‖/‖w_torch‖ < 1e-5 after 20 steps. Both compute in float32;
torch's clip uses θ/(‖g‖ + 1e-6) where gpunet uses θ/‖g‖ (gradient norms here are 3 to 30, so
that differs by < 4e-7 relative), and the summation orders differ. Weight decay (and L1) goes to
the weights only, as gpunet's default decay range does, through torch parameter groups. Momentum
is compared at a constant learning rate, where the velocity form v ← μv − ηg and PyTorch's
v ← μv + g agree; Adam, whose state does not depend on η, is also compared under a changing η.
"""
import numpy as np
import pytest

import gpunet as gn

pytestmark = pytest.mark.oracle

STEPS = 20

CASES = {
    "sgd": (gn.optim.SGD, dict(lr=0.05, weight_decay=1e-2), "SGD", dict(lr=0.05)),
    "momentum": (gn.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-2), "SGD", dict(lr=0.05, momentum=0.9)),
    "nesterov": (gn.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-2), "SGD",
                 dict(lr=0.05, momentum=0.8, nesterov=True)),
    "adagrad": (gn.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=1e-2),
                "Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    "rmsprop": (gn.optim.RMSprop, dict(lr=1e-2, alpha=0.9, weight_decay=1e-2), "RMSprop", dict(lr=1e-2, alpha=0.9)),
    "rmsprop_centered_momentum": (gn.optim.RMSprop, dict(lr=1e-3, alpha=0.95, momentum=0.5, centered=True,
                                                         weight_decay=1e-2),
                                  "RMSprop", dict(lr=1e-3, alpha=0.95, momentum=0.5, centered=True)),
    "adam": (gn.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2), "Adam",
             dict(lr=1e-2, betas=(0.8, 0.99))),
    "adamw": (gn.optim.AdamW, dict(lr=1e-2, weight_decay=0.1), "AdamW", dict(lr=1e-2)),
    "adam_amsgrad": (gn.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2, amsgrad=True), "Adam",
                     dict(lr=1e-2, betas=(0.8, 0.99), amsgrad=True)),
    "adamw_amsgrad": (gn.optim.AdamW, dict(lr=1e-2, weight_decay=0.1, amsgrad=True), "AdamW",
                      dict(lr=1e-2, amsgrad=True)),
    "momentum_dampening": (gn.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2), "SGD",
                           dict(lr=0.05, momentum=0.9, dampening=0.3)),
}


def _model():
    model = gn.Sequential(gn.Linear(13, 11), gn.ReLU(), gn.Linear(11, 7), gn.Tanh(), gn.Linear(7, 3))
    model.flatten()  # gradients are views into the arena from here on
    return model


def _torch_params(model):
    import torch

    return {name: torch.nn.Parameter(torch.tensor(np.array(p))) for name, p in model.named_parameters()}


def _groups(tparams, weight_decay):
    decay = [p for n, p in tparams.items() if n.endswith("weight")]
    rest = [p for n, p in tparams.items() if not n.endswith("weight")]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _set_grads(model, tparams, rng, scale):
    import torch

    for name, g in model.named_gradients():
        value = (rng.standard_normal(g.shape) * scale).astype(np.float32)
        g[...] = value
        tparams[name].grad = torch.tensor(value)


def _rel(model, tparams):
    ours = np.concatenate([np.ravel(p) for _, p in model.named_parameters()]).astype(np.float64)
    theirs = np.concatenate([tparams[n].detach().numpy().ravel() for n, _ in model.named_parameters()]).astype(np.float64)
    return np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)


def _run(case, rng, clip_norm=1.0, clip_value=None, l1=0.0, lrs=None, normalize_eps=None):
    import torch

    cls, kw, tname, tkw = CASES[case] if isinstance(case, str) else case
    model = _model()
    tparams = _torch_params(model)
    opt = cls(model, clip_norm=clip_norm, clip_value=clip_value, l1=l1, **kw)
    topt = getattr(torch.optim, tname)(_groups(tparams, kw.get("weight_decay", 0.0) if tname != "AdamW" else
                                               kw["weight_decay"]), **tkw)
    if tname == "AdamW":
        topt.param_groups[1]["weight_decay"] = 0.0
    allp = list(tparams.values())
    for step in range(STEPS):
        if lrs is not None:
            opt.lr = lrs[step]
            for group in topt.param_groups:
                group["lr"] = lrs[step]
        _set_grads(model, tparams, rng, scale=float(rng.choice([0.3, 1.0, 3.0])))
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(allp, clip_norm)
        if normalize_eps is not None:
            total = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in allp))
            for p in allp:
                p.grad = (p.grad.double() / (total + normalize_eps)).float()
        if clip_value is not None:
            torch.nn.utils.clip_grad_value_(allp, clip_value)
        if l1:
            for name, p in tparams.items():
                if name.endswith("weight"):
                    p.grad += l1 * torch.sign(p.detach())
        opt.step()
        topt.step()
    return model, tparams, opt, topt


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch_with_clipping_and_weight_decay(case, rng):
    model, tparams, _, _ = _run(case, rng)
    assert _rel(model, tparams) < 1e-5
    before = _model()
    assert np.linalg.norm(model.arena.params - before.arena.params) > 1e-3  # the steps did move the weights


@pytest.mark.parametrize("case", ["momentum", "adam", "rmsprop"])
def test_matches_torch_with_value_clipping_and_l1(case, rng):
    model, tparams, _, _ = _run(case, rng, clip_norm=2.0, clip_value=0.05, l1=1e-3)
    assert _rel(model, tparams) < 1e-5


def test_adam_state_matches_torch(rng):
    model, tparams, opt, topt = _run("adam", rng)
    for name, p in tparams.items():
        e = model.arena.entry(name)
        st = topt.state[p]
        for ours, theirs in (("exp_avg", "exp_avg"), ("exp_avg_sq", "exp_avg_sq")):
            got = opt.state[ours][e.offset:e.offset + e.size]
            want = st[theirs].numpy().ravel()
            assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)
    assert opt.steps == STEPS == int(topt.state[next(iter(tparams.values()))]["step"])


def test_adam_matches_torch_under_a_changing_lr(rng):
    lrs = list(1e-2 * 0.8 ** np.arange(STEPS))
    model, tparams, _, _ = _run("adam", rng, lrs=lrs)
    assert _rel(model, tparams) < 1e-5


def test_normalized_sgd_matches_normalized_torch_sgd(rng):
    case = (gn.optim.NormalizedSGD, dict(lr=0.05, weight_decay=1e-2, eps=1e-8), "SGD", dict(lr=0.05))
    model, tparams, _, _ = _run(case, rng, clip_norm=None, normalize_eps=1e-8)
    assert _rel(model, tparams) < 1e-5


def test_clip_grad_norm_matches_torch(rng):
    import torch

    model = _model()
    tparams = _torch_params(model)
    _set_grads(model, tparams, rng, scale=2.0)
    ours = float(gn.clip_grad_norm(model, 1.5))
    theirs = float(torch.nn.utils.clip_grad_norm_(list(tparams.values()), 1.5))
    assert abs(ours - theirs) <= 1e-6 * theirs
    for name, g in model.named_gradients():
        np.testing.assert_allclose(g, tparams[name].grad.numpy(), rtol=2e-6, atol=1e-9)


def test_amsgrad_state_and_dampening_checks():
    model = _model()
    opt = gn.optim.Adam(model, amsgrad=True)
    assert list(opt.state) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    opt2 = gn.optim.Adam(_model(), amsgrad=True)
    opt2.load_state_dict(opt.state_dict())
    plain = gn.optim.AdamW(_model())
    plain.load_state_dict(gn.optim.AdamW(plain.model, amsgrad=True).state_dict())  # takes the checkpoint's settings
    assert plain.hyper["amsgrad"] and "max_exp_avg_sq" in plain.state
    with pytest.raises(ValueError, match="nesterov=True needs dampening=0"):
        gn.optim.SGD(_model(), momentum=0.9, nesterov=True, dampening=0.1)
    with pytest.raises(ValueError, match="dampening is not available"):
        gn.optim.NormalizedSGD(_model(), momentum=0.9, dampening=0.1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_maximize_matches_torch(case, rng):
    """maximize=True: the step on −g (before clipping and decay), torch's maximize=True."""
    cls, kw, tname, tkw = CASES[case]
    model, tparams, opt, _ = _run((cls, {**kw, "maximize": True}, tname, {**tkw, "maximize": True}), rng)
    assert _rel(model, tparams) < 1e-5
    assert opt.maximize and "maximize=True" in repr(opt) and opt.state_dict()["hyper"]["maximize"] is True
