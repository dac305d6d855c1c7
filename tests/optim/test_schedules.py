"""Learning-rate schedules: closed forms, PyTorch's lr_scheduler as an oracle, state, bad input."""
import math

import numpy as np
import pytest

from gpunet.optim import schedules as S

BASE = 0.1


def torch_lrs(make, n, base=BASE, metrics=None):
    """Learning rates PyTorch's scheduler gives for t = 0..n-1 (the rate used during step t)."""
    import torch

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = make(opt)
    out = []
    for t in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[t])
    return np.array(out)


# ---------------------------------------------------------------- closed forms
def test_exponential_closed_form():
    s = S.Exponential(0.98, base_lr=BASE)
    for t in (0, 1, 7, 50):
        assert s(t) == pytest.approx(BASE * 0.98 ** t, rel=1e-15)
    assert s.unit == "epoch"


def test_step_and_multistep_closed_form():
    s = S.Step(3, gamma=0.5, base_lr=BASE)
    assert s.values(8) == pytest.approx([BASE] * 3 + [BASE / 2] * 3 + [BASE / 4] * 2)
    m = S.MultiStep([2, 5], gamma=0.1, base_lr=BASE)
    assert m.values(7) == pytest.approx([BASE] * 2 + [BASE * 0.1] * 3 + [BASE * 0.01] * 2)


def test_cosine_closed_form_and_hold_after_T():
    s = S.Cosine(10, eta_min=0.001, base_lr=BASE)
    assert s(0) == pytest.approx(BASE)
    assert s(5) == pytest.approx(0.001 + (BASE - 0.001) / 2)
    assert s(10) == pytest.approx(0.001)
    assert s(25) == pytest.approx(0.001)  # held at eta_min after T_max


def test_linear_warmup_multiply_and_shift():
    w = S.LinearWarmup(S.Exponential(0.9), warmup=4, start_factor=0.2, base_lr=BASE)
    w.bind(BASE)
    for t in range(8):
        f = 0.2 + 0.8 * min(t, 4) / 4
        assert w(t) == pytest.approx(BASE * 0.9 ** t * f)
    sh = S.LinearWarmup(S.Cosine(6), warmup=3, start_factor=0.0, shift=True).bind(BASE)
    assert sh(0) == 0.0
    assert sh(2) == pytest.approx(BASE * 2 / 3)
    assert sh(3) == pytest.approx(BASE)  # the cosine starts after the warm-up
    assert sh(6) == pytest.approx(BASE / 2)
    alone = S.LinearWarmup(warmup=2, start_factor=0.5, base_lr=1.0)
    assert alone.values(4) == pytest.approx([0.5, 0.75, 1.0, 1.0])


def test_reduce_on_plateau_replays_history():
    r = S.ReduceOnPlateau(factor=0.5, patience=1, base_lr=1.0)
    for v in [1.0, 0.9, 0.95, 0.95, 0.95, 0.5, 0.6, 0.7]:
        r.observe(v)
    # bad epochs: t=2 (1), t=3 (2 > patience -> reduce), t=4 (1), t=6 (1), t=7 (2 -> reduce)
    assert r.values(9) == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25])
    # pure: evaluating again, or out of order, gives the same values
    assert r(4) == 0.5 and r(1) == 1


def test_one_cycle_endpoints():
    s = S.OneCycle(1.0, total_steps=100, pct_start=0.3)
    assert s.unit == "step"
    assert s(0) == pytest.approx(1 / 25)
    assert max(s.values(100)) == pytest.approx(1.0)
    assert s(99) == pytest.approx(1 / 25 / 1e4)


def test_schedules_are_pure_and_checkpointable():
    r = S.ReduceOnPlateau(patience=0, factor=0.5)
    r.bind(0.3)
    for v in [3, 4, 5]:
        r.observe(v)
    state = r.state_dict()
    r2 = S.ReduceOnPlateau(patience=0, factor=0.5)
    r2.load_state_dict(state)
    assert r2.values(4) == r.values(4) == pytest.approx([0.3, 0.3, 0.15, 0.075])
    e = S.LinearWarmup(S.Exponential(0.5), warmup=2).bind(2.0)
    e2 = S.LinearWarmup(S.Exponential(0.5), warmup=2)
    e2.load_state_dict(e.state_dict())
    assert e2.values(5) == e.values(5)
    with pytest.raises(ValueError, match="Step"):
        S.Exponential(0.5).load_state_dict(S.Step(2).state_dict())


def test_bad_arguments():
    with pytest.raises(ValueError, match="gamma"):
        S.Exponential(-0.5)
    with pytest.raises(ValueError, match="step_size"):
        S.Step(0)
    with pytest.raises(ValueError, match="increasing"):
        S.MultiStep([5, 2])
    with pytest.raises(ValueError, match="pct_start"):
        S.OneCycle(1.0, 10, pct_start=1.5)
    with pytest.raises(RuntimeError, match="base_lr is not set"):
        S.Exponential(0.9)(3)
    with pytest.raises(ValueError, match="t must be >= 0"):
        S.Exponential(0.9, base_lr=1)(-1)
    with pytest.raises(TypeError, match="integer"):
        S.Exponential(0.9, base_lr=1)(1.5)


def test_polynomial_inverse_time_and_piecewise_closed_forms():
    """Keras's formulas, written out, at a dozen points and at the boundaries."""
    p = S.Polynomial(10, power=2.0, end_lr=0.01, base_lr=1.0)
    for t in [0, 1, 3, 5, 9, 10, 11, 25]:
        assert p(t) == pytest.approx((1.0 - 0.01) * (1 - min(t, 10) / 10) ** 2 + 0.01)
    c = S.Polynomial(10, power=1.0, end_lr=0.0, cycle=True, base_lr=1.0)
    for t in [0, 1, 5, 9, 10, 11, 15, 20, 21, 35]:
        period = 10 * max(1, math.ceil(t / 10))
        assert c(t) == pytest.approx(1 - t / period), t
    assert c(10) == pytest.approx(0.0) and c(11) == pytest.approx(1 - 11 / 20)  # the second cycle starts higher
    i = S.InverseTime(0.5, decay_steps=3, base_lr=2.0)
    j = S.InverseTime(0.5, decay_steps=3, staircase=True, base_lr=2.0)
    for t in [0, 1, 2, 3, 4, 5, 6, 9, 12, 30, 31, 100]:
        assert i(t) == pytest.approx(2.0 / (1 + 0.5 * t / 3))
        assert j(t) == pytest.approx(2.0 / (1 + 0.5 * (t // 3)))
    w = S.Piecewise([3, 7], [1.0, 0.5, 0.1])
    assert w.values(10) == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1]  # t <= 3, 3 < t <= 7, t > 7
    assert w.apply(type("Opt", (), {"lr": 9.0})(), 5) == 0.5  # the optimizer's own rate is not used
    r = S.CosineWarmRestarts(2, T_mult=3, base_lr=1.0)
    assert [r.period(t) for t in (0, 1, 2, 7, 8, 25, 26)] == [(0, 2), (1, 2), (0, 6), (5, 6), (0, 18), (17, 18),
                                                               (0, 54)]
    assert r(2) == r(8) == r(26) == 1.0  # warm restarts


def test_bad_arguments_of_the_new_schedules():
    with pytest.raises(ValueError, match="total"):
        S.Polynomial(0)
    with pytest.raises(ValueError, match="T_mult"):
        S.CosineWarmRestarts(3, T_mult=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        S.Piecewise([3, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="expected 3 values"):
        S.Piecewise([3, 5], [1, 2])
    with pytest.raises(ValueError, match="decay_steps"):
        S.InverseTime(0.1, decay_steps=0)


# ---------------------------------------------------------------- PyTorch as the oracle


@pytest.mark.oracle
def test_against_torch_simple():
    from torch.optim import lr_scheduler as L

    n = 30
    cases = [
        (S.Exponential(0.93), lambda o: L.ExponentialLR(o, 0.93)),
        (S.Step(4, 0.5), lambda o: L.StepLR(o, 4, 0.5)),
        (S.MultiStep([3, 9, 20], 0.3), lambda o: L.MultiStepLR(o, [3, 9, 20], 0.3)),
        (S.Cosine(n - 1, eta_min=0.002), lambda o: L.CosineAnnealingLR(o, n - 1, eta_min=0.002)),
        (S.Polynomial(12, power=2.0), lambda o: L.PolynomialLR(o, total_iters=12, power=2.0)),
        (S.Polynomial(n, power=0.5), lambda o: L.PolynomialLR(o, total_iters=n, power=0.5)),
        (S.CosineWarmRestarts(4), lambda o: L.CosineAnnealingWarmRestarts(o, 4)),
        (S.CosineWarmRestarts(3, T_mult=2, eta_min=0.01), lambda o: L.CosineAnnealingWarmRestarts(o, 3, 2, 0.01)),
    ]
    for ours, make in cases:
        ours.bind(BASE)
        np.testing.assert_allclose(ours.values(n), torch_lrs(make, n), rtol=1e-10, atol=1e-15,
                                   err_msg=repr(ours))


@pytest.mark.oracle
def test_warmup_against_torch_chained_and_sequential():
    from torch.optim import lr_scheduler as L

    n = 20
    ours = S.LinearWarmup(S.Exponential(0.9), warmup=5, start_factor=0.25).bind(BASE)
    ref = torch_lrs(lambda o: L.ChainedScheduler([L.LinearLR(o, 0.25, 1.0, total_iters=5),
                                                  L.ExponentialLR(o, 0.9)]), n)
    np.testing.assert_allclose(ours.values(n), ref, rtol=1e-10)

    ours = S.LinearWarmup(S.Cosine(12, eta_min=0.001), warmup=4, start_factor=0.1, shift=True).bind(BASE)
    ref = torch_lrs(lambda o: L.SequentialLR(
        o, [L.LinearLR(o, 0.1, 1.0, total_iters=4), L.CosineAnnealingLR(o, 12, eta_min=0.001)],
        milestones=[4]), 17)
    np.testing.assert_allclose(ours.values(17), ref, rtol=1e-9)


@pytest.mark.oracle
@pytest.mark.parametrize("mode,threshold_mode,cooldown", [("min", "rel", 0), ("max", "abs", 2), ("min", "abs", 1)])
def test_reduce_on_plateau_against_torch(rng, mode, threshold_mode, cooldown):
    from torch.optim import lr_scheduler as L

    n = 40
    walk = np.cumsum(rng.normal(0, 1, n)) * 0.1 + 5
    metrics = [float(v) for v in walk]
    ref = torch_lrs(lambda o: L.ReduceLROnPlateau(o, mode=mode, factor=0.5, patience=2, threshold=0.01,
                                                   threshold_mode=threshold_mode, cooldown=cooldown,
                                                   min_lr=0.01), n, metrics=metrics)
    ours = S.ReduceOnPlateau(mode=mode, factor=0.5, patience=2, threshold=0.01,
                             threshold_mode=threshold_mode, cooldown=cooldown, min_lr=0.01).bind(BASE)
    for v in metrics:
        ours.observe(v)
    np.testing.assert_allclose(ours.values(n), ref, rtol=1e-12)
    assert len(set(ref)) > 1, "the scripted metrics must trigger at least one reduction"


@pytest.mark.oracle
@pytest.mark.parametrize("anneal,three_phase", [("cos", False), ("linear", False), ("cos", True)])
def test_one_cycle_against_torch(anneal, three_phase):
    from torch.optim import lr_scheduler as L

    n = 57
    ours = S.OneCycle(0.8, n, pct_start=0.25, anneal=anneal, div_factor=10, final_div_factor=100,
                      three_phase=three_phase)
    ref = torch_lrs(lambda o: L.OneCycleLR(o, max_lr=0.8, total_steps=n, pct_start=0.25,
                                           anneal_strategy=anneal, div_factor=10, final_div_factor=100,
                                           three_phase=three_phase, cycle_momentum=False), n)
    np.testing.assert_allclose(ours.values(n), ref, rtol=1e-10)
    assert not math.isnan(ours(n + 5))
