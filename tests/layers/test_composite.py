"""Forward-only modules: children registered by attribute, backward derived from the record."""
import copy

import numpy as np
import pytest

import gpunet as gn
import gpunet.functional as F
from gpunet.layers.record import RecordError


def _rng(seed=0):
    return np.random.default_rng(seed)


def _x(*shape, seed=0):
    return _rng(seed).standard_normal(shape).astype(np.float32)


def _same_params(src, dst):
    for (n, a), (m, b) in zip(src.named_parameters(), dst.named_parameters()):
        b[...] = a


def _run(model, x, dy):
    y = model(x)
    dx = model.backward(dy)
    return y, dx, [g.copy() for g in model.gradients()]


def _assert_bitwise(a, b):
    ya, dxa, ga = a
    yb, dxb, gb = b
    assert np.array_equal(ya, yb)
    assert np.array_equal(dxa, dxb)
    assert len(ga) == len(gb)
    for g, h in zip(ga, gb):
        assert np.array_equal(g, h)


# ---------------------------------------------------------------------- registration
class Net(gn.Layer):
    def __init__(self):
        super().__init__()
        self.fc1 = gn.Linear(6, 5)
        self.act = gn.ReLU()
        self.blocks = [gn.Linear(5, 5), gn.Linear(5, 5)]
        self.heads = {"a": gn.Linear(5, 3), "b": gn.Linear(5, 3)}

    def forward(self, x):
        h = self.act(self.fc1(x))
        for block in self.blocks:
            h = self.act(block(h)) + h
        return self.heads["a"](h) - self.heads["b"](h)


def test_attributes_register_children_in_assignment_order_with_pytorch_names():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "fc1.weight", "fc1.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
        "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias"]
    assert isinstance(net.blocks, gn.LayerList) and len(net.blocks) == 2
    assert isinstance(net.heads, gn.LayerDict) and set(net.heads) == {"a", "b"}
    assert list(net.state_dict()) == [n for n, _ in net.named_parameters()]
    assert net.num_parameters() == sum(p.size for p in net.parameters())
    assert "fc1" in repr(net) and "blocks" in repr(net)


def test_parameters_are_arrays_and_named_parameters_pairs():
    net = Net()
    params, named = net.parameters(), net.named_parameters()
    assert all(p is q for p, (_, q) in zip(params, named))
    assert all(g is h for g, (_, h) in zip(net.gradients(), net.named_gradients()))
    bn = gn.Sequential(gn.Linear(4, 3), gn.BatchNorm1d(3))
    assert [n for n, _ in bn.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert all(b is c for b, (_, c) in zip(bn.buffers(), bn.named_buffers()))


def test_an_optimizer_takes_model_parameters_and_refuses_named_pairs():
    net = Net()
    opt = gn.optim.Adam(net.parameters(), lr=1e-3)
    assert opt.model is net
    with pytest.raises(TypeError, match="named_parameters"):
        gn.optim.SGD(net.named_parameters(), lr=0.1)
    with pytest.raises(TypeError, match="whole model"):
        gn.optim.SGD([np.zeros(3)], lr=0.1)
    net(_x(4, 6))
    net.backward(_x(4, 3))
    norm = gn.clip_grad_norm(net.parameters(), 1e9)
    assert float(norm) > 0


def test_registration_errors_are_clear():
    class Early(gn.Layer):
        def __init__(self):
            self.fc = gn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Early()

    class Mixed(gn.Layer):
        def __init__(self):
            super().__init__()
            self.parts = [gn.Linear(2, 2), 3]

    with pytest.raises(TypeError, match="layers and other values"):
        Mixed()
    net = Net()
    with pytest.raises(TypeError, match="child layer"):
        net.fc1 = 3
    net.fc1 = gn.Linear(6, 5, bias=False)
    assert [n for n, _ in net.named_parameters()][:2] == ["fc1.weight", "blocks.0.weight"]
    net.fc1 = None
    assert "fc1" not in dict(net.children())


def test_a_subclass_overriding_forward_of_a_layer_with_backward_is_refused():
    with pytest.raises(TypeError, match="inherits Linear.backward"):
        class Scaled(gn.Linear):
            def forward(self, x):
                return super().forward(x) * 2


# ---------------------------------------------------------------------- the same numbers as the built-in blocks
class MyResidual(gn.Layer):
    def __init__(self, block, shortcut=None):
        super().__init__()
        self.block = block
        self.shortcut = shortcut

    def forward(self, x):
        return self.block(x) + (x if self.shortcut is None else self.shortcut(x))


def _conv_block(c_in, c_out, stride=1):
    return gn.Sequential(gn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), gn.BatchNorm2d(c_out),
                         gn.ReLU(), gn.Conv2d(c_out, c_out, 3, padding=1, bias=False), gn.BatchNorm2d(c_out))


@pytest.mark.parametrize("with_shortcut", [False, True])
def test_residual_written_as_python_matches_residual_bit_for_bit(with_shortcut):
    gn.seed(0)
    c_out, stride = (6, 2) if with_shortcut else (4, 1)
    short = gn.Sequential(gn.Conv2d(4, c_out, 1, stride=stride, bias=False), gn.BatchNorm2d(c_out))
    ref = gn.Residual(_conv_block(4, c_out, stride), short if with_shortcut else None)
    mine = MyResidual(copy.deepcopy(ref.block), copy.deepcopy(ref.shortcut) if with_shortcut else None)
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in ref.named_parameters()]
    x = _x(3, 4, 8, 8)
    dy = _x(3, c_out, 8 // stride, 8 // stride, seed=1)
    _assert_bitwise(_run(ref, x, dy), _run(mine, x, dy))
    assert all(np.array_equal(a, b) for a, b in zip(ref.buffers(), mine.buffers()))


class ReadmeBlock(gn.Layer):  # the README's example, as written there
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = gn.Conv2d(c, c, 3, padding=1, bias=False), gn.BatchNorm2d(c)
        self.conv2, self.bn2 = gn.Conv2d(c, c, 3, padding=1, bias=False), gn.BatchNorm2d(c)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + x)


def test_the_readme_block_matches_residual_then_relu_bit_for_bit():
    gn.seed(5)
    mine = ReadmeBlock(4)
    ref = gn.Sequential(gn.Residual(gn.Sequential(*copy.deepcopy([mine.conv1, mine.bn1]), gn.ReLU(),
                                                  *copy.deepcopy([mine.conv2, mine.bn2]))), gn.ReLU())
    x, dy = _x(2, 4, 6, 6), _x(2, 4, 6, 6, seed=6)
    _assert_bitwise(_run(ref, x, dy), _run(mine, x, dy))


class MyInception(gn.Layer):
    def __init__(self, branches):
        super().__init__()
        self.branches = branches

    def forward(self, x):
        return F.concat([b(x) for b in self.branches], axis=1)


def test_inception_written_as_python_matches_concat_bit_for_bit():
    gn.seed(1)
    ref = gn.models.inception_module(3, 2, 2, 3, 1, 2, 2)
    mine = MyInception([copy.deepcopy(b) for b in ref])
    assert [n.replace("branches.", "") for n, _ in mine.named_parameters()] == [n for n, _ in ref.named_parameters()]
    x = _x(2, 3, 6, 6)
    dy = _x(2, 9, 6, 6, seed=2)
    _assert_bitwise(_run(ref, x, dy), _run(mine, x, dy))


class MyChain(gn.Layer):
    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_a_chain_written_as_python_matches_sequential_bit_for_bit_and_skips_the_input_gradient():
    gn.seed(2)
    ref = gn.Sequential(gn.Linear(7, 6), gn.Tanh(), gn.Dropout(0.3), gn.Linear(6, 4))
    mine = MyChain(list(copy.deepcopy(ref)))
    x, dy = _x(5, 7), _x(5, 4, seed=3)
    _assert_bitwise(_run(ref, x, dy), _run(mine, x, dy))
    mine.need_input_grad = False
    mine(x)
    assert mine.backward(dy) is None


# ---------------------------------------------------------------------- gradient checks
class Branchy(gn.Layer):
    """Branching, an intermediate used three times, a shared ReLU, a layer applied twice (weight
    sharing), an own parameter, and most functional ops."""

    def __init__(self):
        super().__init__()
        self.fc1 = gn.Linear(4, 6)
        self.fc2 = gn.Linear(6, 6)
        self.relu = gn.ReLU()
        self.unused = gn.Linear(6, 6)
        self.add_parameter("scale", np.linspace(0.5, 1.5, 6).astype(np.float32))
        self.fc2.bias[...] = np.linspace(-0.3, 0.3, 6)  # no pre-activation sits on ReLU's kink at 0

    def forward(self, x):
        h = self.relu(self.fc1(x))
        a = self.relu(self.fc2(h))          # the shared ReLU, first use
        b = self.relu(self.fc2(h * 0.5))    # fc2 and the ReLU again: weight sharing
        z = a * self.scale + b / 2.0 - h    # h used a third time
        z = F.tanh(z)
        w = F.concat([z, F.sigmoid(h)], axis=1).reshape(len(x), 2, 6).sum(axis=1)
        return F.log_softmax(w[:, 1:], dim=1) + F.mean(w, axis=1, keepdims=True) - (-z).mean()


def test_gradcheck_of_a_module_with_branching_reuse_and_sharing():
    gn.seed(3)
    report = gn.gradcheck(Branchy(), _x(5, 4), atol=1e-6)
    assert set(report) >= {"input", "fc1.weight", "fc2.weight", "scale"}


def test_gradcheck_of_a_convolution_applied_twice():
    class SharedConv(gn.Layer):  # the second call must not overwrite the first call's saved columns
        def __init__(self):
            super().__init__()
            self.conv = gn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            h = self.conv(x)
            return self.conv(F.tanh(h)) + h

    gn.seed(6)
    gn.gradcheck(SharedConv(), _x(2, 2, 5, 5), atol=1e-6)


def test_gradients_add_up_for_a_reused_intermediate():
    class Twice(gn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = gn.Linear(3, 3)

        def forward(self, x):
            h = self.fc(x)
            return h + h * 3.0

    m = Twice()
    x, dy = _x(4, 3), _x(4, 3, seed=5)
    m(x)
    dx = m.backward(dy)
    np.testing.assert_allclose(dx, (4 * dy) @ m.fc.weight, rtol=1e-5)
    np.testing.assert_allclose(m.fc.gradients()[0], (4 * dy).T @ x, rtol=1e-5)


def test_matmul_transpose_getitem_and_a_nested_module():
    class Inner(gn.Layer):
        def __init__(self):
            super().__init__()
            self.add_parameter("w", _x(5, 3, seed=7))

        def forward(self, x):
            return F.matmul(x, self.w) - x[:, :3] / 4.0

    class Outer(gn.Layer):
        def __init__(self):
            super().__init__()
            self.inner = Inner()
            self.add_parameter("v", _x(3, 3, seed=8))

        def forward(self, x):
            h = self.inner(x)
            return (h @ self.v.T) * h + F.leaky_relu(h, 0.1)

    gn.gradcheck(Outer(), _x(4, 5), atol=1e-6)


def test_functional_pooling_is_the_layers_bit_for_bit():
    class Pools(gn.Layer):
        def forward(self, x):
            return F.max_pool2d(x, 2) + F.avg_pool2d(x, (2, 2), stride=2)

    ref = gn.Sequential(gn.MaxPool2d(2))
    ref2 = gn.Sequential(gn.AvgPool2d(2, stride=2))
    x, dy = _x(2, 3, 6, 6), _x(2, 3, 3, 3, seed=4)
    m = Pools()
    y = m(x)
    assert np.array_equal(y, ref(x) + ref2(x))
    assert np.array_equal(m.backward(dy), ref.backward(dy) + ref2.backward(dy))


def test_unused_children_get_zero_gradients_and_overwrite_holds():
    net = Branchy()
    net.unused.gradients()[0][...] = 7
    net(_x(3, 4))
    net.backward(_x(3, 5))
    assert not net.unused.gradients()[0].any()
    g1 = [g.copy() for g in net.gradients()]
    net(_x(3, 4))
    net.backward(_x(3, 5))
    assert all(np.array_equal(a, b) for a, b in zip(g1, net.gradients()))  # overwritten, not accumulated


# ---------------------------------------------------------------------- errors
def test_a_non_recordable_operation_names_the_op():
    class Bad(gn.Layer):
        def __init__(self, op):
            super().__init__()
            self.fc, self.op = gn.Linear(3, 3), op

        def forward(self, x):
            return self.op(self.fc(x))

    for op, name in ((np.exp, "np.exp"), (lambda h: h.clip(0, 1), ".clip"), (np.asarray, "converting it"),
                     (lambda h: np.concatenate([h, h]), "np.concatenate")):
        with pytest.raises(RecordError, match=name.replace(".", "\\.")):
            Bad(op)(_x(2, 3))
    m = Bad(np.exp).eval()  # an eval forward is not recorded: plain arrays flow
    assert np.allclose(m(_x(2, 3)), np.exp(m.fc(_x(2, 3))))


def test_backward_without_a_recorded_forward_is_a_clear_error():
    net = Net()
    with pytest.raises(RuntimeError, match="without a recorded training forward"):
        net.backward(_x(2, 3))
    net.eval()
    net(_x(2, 6))
    with pytest.raises(RuntimeError, match="eval mode"):
        net.backward(_x(2, 3))
    net.train()
    net(_x(2, 6))
    with pytest.raises(ValueError, match="dy has shape"):
        net.backward(_x(2, 4))

    class ReturnsConstant(gn.Layer):
        def forward(self, x):
            return np.zeros(3)

    with pytest.raises(RecordError, match="must return"):
        ReturnsConstant()(_x(2, 3))


# ---------------------------------------------------------------------- functional dropout
class DropNet(gn.Layer):
    def forward(self, x):
        return F.dropout(x, 0.5) * 3.0 + F.dropout(x, 0.5)


def test_functional_dropout_streams_are_per_call_site_and_resume_from_the_random_state():
    gn.seed(4)
    x = np.abs(_x(64, 8)) + 0.5
    net = DropNet()
    net(x)
    state = copy.deepcopy(net.get_rng_state())
    assert len(state["functional_dropout"]) == 2
    y = net(x)
    dy = _x(64, 8, seed=9)
    dx = net.backward(dy)
    ratio = np.round(y / x, 4)  # 2·(3·m₁ + m₂): the two sites' masks, told apart
    assert set(np.unique(ratio)) <= {0.0, 2.0, 6.0, 8.0} and len(np.unique(ratio)) == 4
    m1, m2 = ratio >= 6, (ratio == 2) | (ratio == 8)
    np.testing.assert_allclose(dx, dy * (6 * m1 + 2 * m2), rtol=1e-6)
    twin = copy.deepcopy(net)
    twin.__dict__.pop("_dropouts")
    twin.set_rng_state(state)  # before its first forward: kept for the dropouts it will make
    assert np.array_equal(twin(x), y)
    assert np.array_equal(net.eval()(x), 4 * x)
    with pytest.raises(RuntimeError, match="plain array"):
        F.dropout(x, 0.5, training=True)


# ---------------------------------------------------------------------- training
def test_fit_trains_a_forward_only_cnn_on_mnist_sample():
    from gpunet.data import mnist_sample

    class SmallCNN(gn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = gn.Conv2d(1, 8, 3, padding=1)
            self.pool = gn.MaxPool2d(2)
            self.fc = gn.Linear(8 * 14 * 14, 10)

        def forward(self, x):
            h = self.pool(F.relu(self.conv(x)))
            return self.fc(F.flatten(h))

    gn.seed(0)
    data = mnist_sample("train", flatten=False)
    x, y = data.x[:600], data.y[:600]
    model = SmallCNN()
    trainer = gn.Trainer(model, gn.losses.CrossEntropy(), gn.optim.Adam(model.parameters(), lr=2e-3))
    hist = trainer.fit((x, y), epochs=3, batch_size=50, verbose=0)
    assert hist["loss"][-1] < 0.6 * hist["loss"][0]
    assert trainer.evaluate((x, y))["accuracy"] > 0.8
