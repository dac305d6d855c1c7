"""Sizes inferred from the first input (Linear(None, n), Conv2d(None, c, k)), model.build, and the
activation= shorthand on Linear and Conv2d."""
import copy

import numpy as np
import pytest

import gpunet as gn
import gpunet.functional as F


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _cnn(lazy: bool):
    c_in, f_in = (None, None) if lazy else (1, 8 * 13 * 13)
    return gn.Sequential(gn.Conv2d(c_in, 8, 3), gn.ReLU(), gn.MaxPool2d(2), gn.Flatten(), gn.Linear(f_in, 10))


def test_inferred_sizes_give_the_weights_of_written_sizes():
    gn.seed(3)
    written = _cnn(lazy=False)
    gn.seed(3)
    lazy = _cnn(lazy=True)
    assert not lazy.built and lazy.unbuilt_layers() == ["0", "4"] and lazy.parameters() == []
    assert lazy.build((1, 28, 28)) is lazy and lazy.built
    assert lazy[0].in_channels == 1 and lazy[4].in_features == 8 * 13 * 13
    for (n, a), (m, b) in zip(written.named_parameters(), lazy.named_parameters()):
        assert n == m and np.array_equal(a, b)
    text = repr(lazy)
    assert "(N, 8, 26, 26)" in text and "(N, 1352)" in text and "(N, 10)" in text


def test_an_optimizer_made_before_the_sizes_are_known_binds_on_first_use():
    gn.seed(0)
    model = _cnn(lazy=True)
    opt = gn.optim.Adam(model.parameters(), lr=1e-2)
    with pytest.raises(RuntimeError, match=r"sizes are not known yet \(0, 4 infer"):
        opt.step()
    with pytest.raises(RuntimeError, match="run a forward pass or model.build"):
        model.flatten()
    x = _x(4, 1, 28, 28)
    model(x)
    model.backward(_x(4, 10, seed=1))
    before = [p.copy() for p in model.parameters()]
    opt.step()
    assert opt.arena is model.arena and set(opt.state) == {"exp_avg", "exp_avg_sq"}
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.parameters()))


def test_fit_trains_a_model_with_inferred_sizes_and_an_optimizer_by_name():
    from gpunet.data import mnist_sample

    gn.seed(0)
    data = mnist_sample("train", flatten=False)
    model = gn.Sequential(gn.Conv2d(None, 8, 3, activation="relu"), gn.MaxPool2d(2), gn.Flatten(),
                          gn.Linear(None, 32, activation="relu"), gn.Linear(None, 10))
    t = gn.Trainer(model, "sparse_categorical_crossentropy", "adam")
    h = t.fit(data.x[:500], data.y[:500], epochs=3, batch_size=50, verbose=0)
    assert h["loss"][-1] < 0.7 * h["loss"][0] and model.built


def test_lazy_layers_take_the_dtype_the_model_was_cast_to():
    model = gn.Sequential(gn.Linear(None, 3)).to(dtype=np.float64)
    model(np.zeros((2, 5)))
    assert model[0].weight.dtype == np.float64 and model[0].weight.shape == (3, 5)


def test_load_state_dict_into_an_unbuilt_model_says_to_build_it():
    built = _cnn(lazy=False)
    with pytest.raises(KeyError, match=r"model.build\(input_shape\) first"):
        _cnn(lazy=True).load_state_dict(built.state_dict())
    again = _cnn(lazy=True).build((1, 28, 28))
    again.load_state_dict(built.state_dict())


# ---------------------------------------------------------------------- activation=
@pytest.mark.parametrize("act, layer", [("relu", gn.ReLU), ("tanh", gn.Tanh), ("sigmoid", gn.Sigmoid),
                                        ("leaky_relu", gn.LeakyReLU)])
def test_activation_shorthand_is_the_activation_layer_bit_for_bit(act, layer):
    gn.seed(1)
    short = gn.Sequential(gn.Conv2d(2, 3, 3, padding=1, activation=act), gn.Flatten(),
                          gn.Linear(48, 5, activation=act))
    long = gn.Sequential(copy.deepcopy(short[0]), layer(), gn.Flatten(), copy.deepcopy(short[2]), layer())
    for lyr in (long[0], long[3]):
        lyr.__dict__["_act"] = None
    x, dy = _x(3, 2, 4, 4), _x(3, 5, seed=2)
    ys, yl = short(x), long(x)
    assert np.array_equal(ys, yl)
    assert np.array_equal(short.backward(dy), long.backward(dy))
    assert all(np.array_equal(a, b) for a, b in zip(short.gradients(), long.gradients()))
    assert f"activation={act!r}" in repr(short)
    gn.gradcheck(gn.Linear(4, 3, activation=act), _x(5, 4), atol=1e-6)


def test_activation_errors_and_softmax_before_cross_entropy():
    with pytest.raises(ValueError, match=r"Linear: activation must be one of \['leaky_relu', 'relu'"):
        gn.Linear(3, 3, activation="gelu")
    with pytest.raises(ValueError, match="Conv2d: activation must be"):
        gn.Conv2d(1, 3, 3, activation=gn.ReLU)
    model = gn.Sequential(gn.Linear(4, 3, activation="softmax"))
    with pytest.raises(ValueError, match="ends with a Softmax"):
        gn.Trainer(model, "cross_entropy", "adam")
    gn.Trainer(model, "mse", "adam")  # probabilities against targets: fine


def test_a_linear_with_activation_applied_twice_in_one_forward():
    class Twice(gn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = gn.Linear(4, 4, activation="tanh")

        def forward(self, x):
            return self.fc(self.fc(x) * 0.5) + F.sigmoid(x)

    gn.seed(2)
    gn.gradcheck(Twice(), _x(3, 4), atol=1e-6)


def test_printing_a_model_between_forward_and_backward_changes_nothing():
    gn.seed(4)
    model = gn.Sequential(gn.Conv2d(1, 4, 3, activation="relu"), gn.BatchNorm2d(4), gn.Flatten(),
                          gn.Dropout(0.5), gn.Linear(None, 3)).build((1, 6, 6))
    twin = copy.deepcopy(model)
    x, dy = _x(5, 1, 6, 6), _x(5, 3, seed=5)
    model(x)
    twin(x)
    text = model.summary((1, 6, 6))  # a probe forward of its own, in eval mode
    assert "(N, 4, 4, 4)" in text and "(N, 64)" in text
    assert np.array_equal(model.backward(dy), twin.backward(dy))
    assert all(np.array_equal(a, b) for a, b in zip(model.gradients(), twin.gradients()))
    assert model.training and model[3].step == twin[3].step
