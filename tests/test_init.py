"""Initializers: each one's mean and standard deviation against its formula, within sampling error."""
import math

import numpy as np
import pytest

import gpunet as gn
from gpunet import init

SHAPE_DENSE = (300, 400)  # fan_in 400, fan_out 300
SHAPE_CONV = (64, 16, 3, 3)  # fan_in 144, fan_out 576


def _expected_std(name, fan_in, fan_out):
    return {
        "uniform": 1 / np.sqrt(fan_in) / np.sqrt(3),
        "gaussian": 1 / np.sqrt(fan_in),
        "lecun_normal": 1 / np.sqrt(fan_in),
        "glorot_normal": np.sqrt(2 / (fan_in + fan_out)),
        "xavier_normal": np.sqrt(2 / (fan_in + fan_out)),
        "glorot_uniform": np.sqrt(6 / (fan_in + fan_out)) / np.sqrt(3),
        "xavier_uniform": np.sqrt(6 / (fan_in + fan_out)) / np.sqrt(3),
        "he_normal": np.sqrt(2 / fan_in),
        "he_uniform": np.sqrt(6 / fan_in) / np.sqrt(3),
    }[name]


@pytest.mark.parametrize("shape", [SHAPE_DENSE, SHAPE_CONV], ids=["dense", "conv"])
@pytest.mark.parametrize("name", ["uniform", "gaussian", "lecun_normal", "glorot_normal", "xavier_normal",
                                  "glorot_uniform", "xavier_uniform", "he_normal", "he_uniform"])
def test_mean_and_std_match_the_formula(name, shape):
    gn.seed(123)
    w = init.initialize(name, shape, dtype="float64")
    fan_in, fan_out = init.fans(shape)
    n = w.size
    std = _expected_std(name, fan_in, fan_out)
    # mean: standard error std/sqrt(n); 5 standard errors -> false alarm ~6e-7
    assert abs(w.mean()) < 5 * std / np.sqrt(n)
    # std: the sample std's relative standard error is about sqrt((kurtosis - 1) / 4n) <= 1/sqrt(2n)
    assert abs(w.std() / std - 1) < 5 * np.sqrt(1.0 / n)


def test_fans_for_dense_and_conv_shapes():
    assert init.fans((300, 400)) == (400, 300)
    assert init.fans((64, 16, 3, 3)) == (144, 576)
    assert init.fans((10,)) == (10, 10)


def test_uniform_bounds_and_lecun_truncation():
    w = init.initialize("he_uniform", (200, 50), dtype="float64")
    assert np.abs(w).max() <= np.sqrt(6 / 50)
    w = init.initialize("lecun_normal", (200, 50), dtype="float64")
    assert np.abs(w).max() <= 2 * (1 / np.sqrt(50)) / 0.87962566103423978 + 1e-12


def test_orthogonal_rows_are_orthonormal():
    w = init.initialize("orthogonal", (20, 50), dtype="float64")
    np.testing.assert_allclose(w @ w.T, np.eye(20), atol=1e-10)
    w = init.initialize("orthogonal", (50, 20), dtype="float64")
    np.testing.assert_allclose(w.T @ w, np.eye(20), atol=1e-10)
    w = init.initialize("orthogonal", (8, 2, 3, 3), dtype="float64").reshape(8, -1)
    np.testing.assert_allclose(w @ w.T, np.eye(8), atol=1e-10)


def test_zeros_constant_and_keyword_arguments():
    assert not init.initialize("zeros", (3, 4)).any()
    assert (init.initialize(init.get("constant", value=0.5), (3, 4)) == 0.5).all()
    w = init.initialize(init.get("gaussian", std=1.0), (400, 400), dtype="float64")
    assert abs(w.std() - 1.0) < 0.01


def test_callable_initializer_and_linear_uses_it():
    lin = gn.Linear(3, 2, init=lambda shape, fan_in, fan_out, rng: np.full(shape, fan_in + 0.5))
    assert (lin.weight == 3.5).all()


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown initializer 'he'.*glorot_normal.*he_normal.*xavier_uniform"):
        gn.Linear(3, 2, init="he")


def test_same_seed_same_weights():
    gn.seed(7)
    a = gn.Linear(10, 10).weight.copy()
    gn.seed(7)
    b = gn.Linear(10, 10).weight.copy()
    gn.seed(8)
    c = gn.Linear(10, 10).weight.copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("make", [lambda **kw: gn.Linear(50, 8, **kw), lambda **kw: gn.Conv2d(2, 8, 5, **kw)])
def test_bias_init_takes_a_number_a_name_or_a_callable_with_the_layers_fan_in(make):
    assert not make().bias.any()  # zeros by default
    assert np.all(make(bias_init=0.1).bias == np.float32(0.1))
    gn.seed(0)
    b = make(bias_init="uniform").bias
    bound = 1 / np.sqrt(50)  # fan_in: 50 inputs, or 2 channels x 5 x 5
    assert np.all(np.abs(b) <= bound) and b.std() > bound / 4 and len(np.unique(b)) == 8
    seen = {}
    make(bias_init=lambda shape, fan_in, fan_out, rng: seen.setdefault("args", (shape, fan_in)) and np.ones(shape))
    assert seen["args"] == ((8,), 50)
    with pytest.raises(ValueError, match=r"(Linear|Conv2d)\(bias_init\): unknown initializer 'zero'"):
        make(bias_init="zero")
    with pytest.raises(ValueError, match="bias_init must be finite"):
        make(bias_init=float("nan"))


# ---------------------------------------------------------------------- options: mode, gain, truncated
OPTION_CASES = [  # (name, options, std for fan_in 144 / fan_out 576)
    ("he_normal", {"mode": "fan_out"}, np.sqrt(2 / 576)),
    ("he_normal", {"gain": 0.5}, 0.5 * np.sqrt(2 / 144)),
    ("he_normal", {"truncated": True}, np.sqrt(2 / 144)),
    ("he_uniform", {"mode": "fan_out", "gain": 2.0}, 2.0 * np.sqrt(6 / 576) / np.sqrt(3)),
    ("lecun_normal", {"mode": "fan_out"}, 1 / np.sqrt(576)),
    ("lecun_normal", {"truncated": False, "gain": 3.0}, 3.0 / np.sqrt(144)),
    ("lecun_uniform", {}, np.sqrt(3 / 144) / np.sqrt(3)),
    ("lecun_uniform", {"mode": "fan_out"}, np.sqrt(3 / 576) / np.sqrt(3)),
    ("glorot_normal", {"gain": 2.0, "truncated": True}, 2.0 * np.sqrt(2 / 720)),
    ("glorot_uniform", {"gain": 0.5}, 0.5 * np.sqrt(6 / 720) / np.sqrt(3)),
    ("trunc_normal", {"std": 0.02, "a": -1.0, "b": 1.0}, 0.02),  # bounds at 50σ: the plain normal
]


@pytest.mark.parametrize("name,options,std", OPTION_CASES)
def test_mode_gain_and_truncation_options_give_the_formulas_std(name, options, std):
    gn.seed(7)
    w = init.initialize(init.get(name, **options), SHAPE_CONV, dtype="float64")
    assert abs(w.mean()) < 5 * std / np.sqrt(w.size)
    assert abs(w.std() / std - 1) < 5 * np.sqrt(1.0 / w.size)
    if options.get("truncated") or (name == "lecun_normal" and options.get("truncated", True)):
        assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-12


def test_defaults_draw_as_before():
    """The options' defaults keep the draws of the names without options, bit for bit."""
    rng = np.random.default_rng(3)
    ref = np.random.default_rng(3).normal(0.0, np.sqrt(2 / 144), size=SHAPE_CONV)
    np.testing.assert_array_equal(init.he_normal(SHAPE_CONV, 144, 576, rng), ref)


def test_trunc_normal_keeps_its_bounds_and_moments():
    gn.seed(11)
    w = init.initialize(init.get("trunc_normal", mean=0.5, std=1.0, a=0.0, b=1.0), (200, 300), dtype="float64")
    assert w.min() >= 0.0 and w.max() <= 1.0
    # N(0.5, 1) restricted to [0, 1]: symmetric about 0.5; variance (1 − 2αφ(α)/(2Φ(α) − 1)), α = 0.5
    phi = np.exp(-0.125) / np.sqrt(2 * np.pi)
    var = 1 - 2 * 0.5 * phi / math.erf(0.5 / np.sqrt(2))
    assert abs(w.mean() - 0.5) < 5 * np.sqrt(var / w.size)
    assert abs(w.var() / var - 1) < 0.02
    with pytest.raises(ValueError, match="widen the bounds"):
        init.initialize(init.get("trunc_normal", a=6.0, b=7.0), (3, 3))


@pytest.mark.oracle
def test_kaiming_and_xavier_stds_match_pytorchs():
    torch = pytest.importorskip("torch")
    t = torch.empty(SHAPE_CONV, dtype=torch.float64)
    torch.manual_seed(0)
    torch.nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    gn.seed(0)
    ours = init.initialize(init.get("he_normal", mode="fan_out"), SHAPE_CONV, dtype="float64")
    assert abs(ours.std() / t.std().item() - 1) < 0.02
    torch.nn.init.xavier_uniform_(t, gain=0.5)
    ours = init.initialize(init.get("glorot_uniform", gain=0.5), SHAPE_CONV, dtype="float64")
    assert abs(np.abs(ours).max() / t.abs().max().item() - 1) < 0.01  # the same bound a


def test_bad_options_and_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.initialize(init.get("he_normal", mode="fan_avg"), (3, 3))
    with pytest.raises(ValueError, match="gain must be a positive number"):
        init.initialize(init.get("lecun_uniform", gain=-1), (3, 3))
    for shape in [(5,), (0, 4), (3, 0, 2)]:
        with pytest.raises(ValueError, match="orthogonal: needs a weight of at least two non-empty"):
            init.initialize("orthogonal", shape)
