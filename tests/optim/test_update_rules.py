"""Update rules written by users (gpunet.optim.update_rule): each tier against the float64
reference, Adadelta against torch.optim.Adadelta, a rule with ``t`` against the built-in Adam, and
the optimizer machinery (guard, clipping, state dicts, names) around them."""
import math

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.ops.registry import OPS
from gpunet.optim import Adadelta, update_rule
from gpunet.testing import Case, compare_tiers

OP = OPS["optim_update"]
SPEC = Adadelta.spec


def _tier(tier):
    def run(w, g, square_avg, acc_delta, stats, **kw):
        xp = backend.get_array_module(w)
        stats = xp.asarray(stats, dtype=np.float64)
        if tier == "reference":
            OP.module("reference").rule(SPEC, w, g, square_avg, acc_delta, stats, **kw)
        else:
            SPEC.compiled(tier, OP.module)(w, g, square_avg, acc_delta, stats, **kw)
    return run


def _case(rng):
    n = int(rng.choice([1, 5, 67, 1001, 4097]))
    w, g = rng.standard_normal(n), rng.standard_normal(n) * float(10 ** rng.uniform(-3, 1))
    kind = rng.choice(["plain", "plain", "skip", "ignore"])
    if kind != "plain":
        g[rng.integers(n)] = np.nan
    stats = np.array([float(np.sum(g * g)), float(kind != "plain"), float(rng.integers(1, 9)), 0.0])
    norm = math.sqrt(stats[0]) if kind == "plain" else 1.0
    scalars = {"stats": stats, "n_decay": int(rng.integers(0, n + 1)), "lr": float(rng.choice([1.0, 0.3])),
               "weight_decay": float(rng.choice([0.0, 1e-2])), "l1": float(rng.choice([0.0, 1e-3])),
               "decoupled_wd": 0.0, "clip_norm": float(rng.choice([0.0, 0.5])) * norm,
               "clip_value": float(rng.choice([0.0, 0.1])), "norm_eps": 0.0, "guard": kind != "ignore",
               "rho": float(rng.choice([0.9, 0.95])), "eps": float(rng.choice([1e-6, 1e-3]))}
    return Case(inputs={"g": g}, inplace={"w": w, "square_avg": rng.uniform(0, 2, n), "acc_delta": rng.uniform(0, 1, n)},
                scalars=scalars, label=f"n={n} {kind}")


def test_numba_cpu_tier_matches_the_reference():
    report = compare_tiers({"reference": _tier("reference"), "numba_cpu": _tier("numba_cpu")}, _case, draws=12,
                           seed=3)
    report.assert_below(5e-6)


def test_the_comparison_can_fail():
    wrong = update_rule(state=("square_avg", "acc_delta"), name="WrongAdadelta")(
        lambda w, g, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6: (w - lr * g, square_avg, acc_delta))

    def run(w, g, square_avg, acc_delta, stats, **kw):
        wrong.spec.compiled("numba_cpu", OP.module)(w, g, square_avg, acc_delta, np.asarray(stats), **kw)

    report = compare_tiers({"reference": _tier("reference"), "numba_cpu": run}, _case, draws=3, seed=4)
    assert report.max_error("numba_cpu") > 1e-3


@pytest.mark.cudasim
def test_numba_cuda_tier_matches_the_reference_under_the_simulator():
    def case(rng):
        c = _case(rng)
        n = min(c.inplace["w"].size, 67)  # the simulator runs threads in Python
        c.inputs["g"] = c.inputs["g"][:n]
        c.inplace = {k: v[:n] for k, v in c.inplace.items()}
        c.scalars["n_decay"] = min(c.scalars["n_decay"], n)
        return c

    report = compare_tiers({"reference": _tier("reference"), "numba_cuda": _tier("numba_cuda")}, case, draws=4,
                           seed=5)
    report.assert_below(5e-6)


@pytest.mark.gpu
def test_numba_cuda_tier_on_a_gpu_matches_the_reference():
    report = compare_tiers({"reference": _tier("reference"), "numba_cuda": _tier("numba_cuda")}, _case, draws=8,
                           seed=6)
    report.assert_below(5e-6)


# ---------------------------------------------------------------------- against PyTorch and the built-ins
def _mlp():
    gn.seed(0)
    m = gn.Sequential(gn.Linear(9, 7), gn.Tanh(), gn.Linear(7, 3)).to(dtype=np.float64)
    m.flatten()
    return m


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [dict(), dict(lr=0.5, rho=0.95, eps=1e-4, weight_decay=1e-2),
                                dict(lr=0.5, weight_decay=1e-2, maximize=True)])
def test_adadelta_matches_torch(kw):
    import torch

    model = _mlp()
    tparams = [torch.nn.Parameter(torch.tensor(np.array(p))) for p in model.parameters()]
    opt = Adadelta(model, decay_all=True, **kw)
    topt = torch.optim.Adadelta(tparams, **{k: v for k, v in kw.items()})
    rng = np.random.default_rng(1)
    for _ in range(15):
        for g, tp in zip(model.gradients(), tparams):
            g[...] = rng.standard_normal(g.shape)
            tp.grad = torch.tensor(np.array(g))
        opt.step()
        topt.step()
    for p, tp in zip(model.parameters(), tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(opt.state["acc_delta"][:63], torch.cat(
        [topt.state[tp]["acc_delta"].ravel() for tp in tparams[:1]]).numpy(), rtol=1e-12)


@update_rule(state=("m", "v"))
def RuleAdam(w, g, m, v, lr=1e-3, t=0.0, beta1=0.9, beta2=0.999, eps=1e-8):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return w - lr / (1 - beta1 ** t) * m / (math.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps), m, v


def test_a_rule_reading_the_step_count_matches_the_builtin_adam():
    a, b = _mlp(), _mlp()
    ours = RuleAdam(a, lr=1e-2, clip_norm=0.5, weight_decay=1e-3)
    builtin = gn.optim.Adam(b, lr=1e-2, clip_norm=0.5, weight_decay=1e-3)
    rng = np.random.default_rng(2)
    for _ in range(10):
        for ga, gb in zip(a.gradients(), b.gradients()):
            ga[...] = gb[...] = rng.standard_normal(ga.shape)
        ours.step()
        builtin.step()
    np.testing.assert_allclose(a.arena.params, b.arena.params, rtol=1e-12, atol=1e-15)
    assert ours.steps == 10


# ---------------------------------------------------------------------- the machinery around a rule
def test_guard_state_dict_and_names():
    model = _mlp()
    opt = Adadelta(model)
    model.gradients()[0][0, 0] = np.nan
    before = model.arena.params.copy()
    opt.step()
    assert opt.skipped_steps == 1 and np.array_equal(model.arena.params, before)
    model.gradients()[0][0, 0] = 0.5
    opt.step()
    state = opt.state_dict()
    other = Adadelta(_mlp(), rho=0.5)
    other.load_state_dict(state)
    assert other.hyper == opt.hyper and np.array_equal(other.state["acc_delta"], opt.state["acc_delta"])
    assert type(gn.Trainer(model, "cross_entropy", "adadelta").optimizer) is Adadelta
    assert "Adadelta(model, lr=1.0, rho=0.9, eps=1e-06" in Adadelta.__doc__
    with pytest.raises(TypeError, match=r"unknown arguments \['momentum'\]"):
        Adadelta(model, momentum=0.9)


def test_rule_definitions_are_checked():
    with pytest.raises(TypeError, match=r"must start \(w, g, s, lr"):
        update_rule(state=("s",))(lambda w, g, lr: w)
    with pytest.raises(TypeError, match="after w, g and the state comes lr"):
        update_rule()(lambda w, g, rho=0.9: w)
    with pytest.raises(TypeError, match=r"\['rho'\] need defaults"):
        update_rule()(lambda w, g, lr, rho: w)
    with pytest.raises(TypeError, match=r"\['cv'\] are names gpunet's loops use"):
        update_rule()(lambda w, g, lr=0.1, cv=1.0: w)
    needs_lr = update_rule(name="NoDefault")(lambda w, g, lr: w - lr * g)
    model = _mlp()
    with pytest.raises(TypeError, match="NoDefault: lr is required"):
        needs_lr(model)
    opt = update_rule(name="PlainSGD")(lambda w, g, lr=0.1: w - lr * g)(model)
    before = [p.copy() for p in model.parameters()]
    for g in model.gradients():
        g[...] = 1.0
    opt.step()
    for p, b in zip(model.parameters(), before):
        np.testing.assert_allclose(p, b - 0.1, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------- the built-in options written as rules
def _builtin_rule_case(spec):
    """A small case of AMSGrad's or dampened momentum's rule (their states, their hyper-parameters)."""
    def make(rng):
        n = int(rng.choice([1, 5, 33]))
        g = rng.standard_normal(n)
        stats = np.array([float(np.sum(g * g)), 0.0, float(rng.integers(1, 4)), 0.0])  # t = 1 included
        states = {name: rng.uniform(0, 1, n) for name in spec.state}
        hyper = {"beta1": 0.8, "beta2": 0.99, "eps": 1e-8} if "beta1" in spec.hyper else {"momentum": 0.9,
                                                                                           "dampening": 0.3}
        scalars = {"stats": stats, "n_decay": n, "lr": 0.1, "weight_decay": 0.0, "l1": 0.0, "decoupled_wd": 0.0,
                   "clip_norm": 0.0, "clip_value": 0.0, "norm_eps": 0.0, "guard": True, **hyper}
        return Case(inputs={"g": g}, inplace={"w": rng.standard_normal(n), **states}, scalars=scalars, label=str(n))
    return make


def _spec_tier(spec, tier):
    def run(w, g, stats, **kw):
        states = [kw.pop(name) for name in spec.state]
        stats = backend.get_array_module(w).asarray(stats, dtype=np.float64)
        if tier == "reference":
            OP.module("reference").rule(spec, w, g, *states, stats, **kw)
        else:
            spec.compiled(tier, OP.module)(w, g, *states, stats, **kw)
    return run


def _builtin_specs():
    from gpunet.optim.adaptive import AMSGRAD
    from gpunet.optim.sgd import DAMPENED

    return [AMSGRAD, DAMPENED]


def test_amsgrad_and_dampening_rules_on_the_cpu_tier_match_the_reference():
    for spec in _builtin_specs():
        compare_tiers({"reference": _spec_tier(spec, "reference"), "numba_cpu": _spec_tier(spec, "numba_cpu")},
                      _builtin_rule_case(spec), draws=6, seed=11).assert_below(5e-6)


@pytest.mark.cudasim
def test_amsgrad_and_dampening_rules_under_the_simulator_match_the_reference():
    for spec in _builtin_specs():
        compare_tiers({"reference": _spec_tier(spec, "reference"), "numba_cuda": _spec_tier(spec, "numba_cuda")},
                      _builtin_rule_case(spec), draws=2, seed=12).assert_below(5e-6)


def test_maximize_refuses_a_rule_that_is_not_odd_in_g_and_lr():
    @update_rule(state=())
    def SquaredStep(w, g, lr=0.1):
        return w - lr * g * g

    with pytest.raises(ValueError, match=r"SquaredStep: maximize=True needs a rule whose step is odd in \(g, lr\)"):
        SquaredStep(_mlp(), maximize=True)
    SquaredStep(_mlp())  # fine when minimizing
    with pytest.raises(TypeError, match="maximize must be True or False"):
        Adadelta(_mlp(), maximize="yes")
