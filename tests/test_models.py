"""gpunet.models: exact layer lists and parameter counts (counted here by hand from the
architectures), shapes, arena decay groups, PyTorch as the oracle for dropout_cnn, and a short
training run that must lower the loss."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.models import dropout_cnn, inception_small, resnet_small


def conv(c_in, c_out, k, bias=True):
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(c):
    return 2 * c


def test_dropout_cnn_layers_and_count():
    model = dropout_cnn(0.2)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Dropout", "Linear"]
    assert (model[0].in_channels, model[0].out_channels, model[0].kernel_size) == (1, 32, (3, 3))
    assert (model[3].in_channels, model[3].out_channels, model[3].kernel_size) == (32, 64, (3, 3))
    assert model[2].kernel_size == (2, 2) and model[7].p == 0.2
    assert (model[8].in_features, model[8].out_features) == (1600, 10)
    assert model.num_parameters() == conv(1, 32, 3) + conv(32, 64, 3) + 1600 * 10 + 10 == 34_826
    for p in (0.0, 0.5, 0.8):
        assert dropout_cnn(p).num_parameters() == 34_826


def test_resnet_small_count():
    stem = conv(1, 16, 3, False) + bn(16)
    block1 = 2 * (conv(16, 16, 3, False) + bn(16))
    block2 = conv(16, 32, 3, False) + conv(32, 32, 3, False) + 2 * bn(32) + conv(16, 32, 1, False) + bn(32)
    block3 = conv(32, 64, 3, False) + conv(64, 64, 3, False) + 2 * bn(64) + conv(32, 64, 1, False) + bn(64)
    fc = 64 * 10 + 10
    assert resnet_small().num_parameters() == stem + block1 + block2 + block3 + fc == 77_754


def test_inception_small_count():
    def module(c_in, c1, c3r, c3, c5r, c5, cp):
        unit = lambda a, b, k: conv(a, b, k, False) + bn(b)  # noqa: E731
        return (unit(c_in, c1, 1) + unit(c_in, c3r, 1) + unit(c3r, c3, 3) + unit(c_in, c5r, 1)
                + unit(c5r, c5, 5) + unit(c_in, cp, 1))

    total = (conv(1, 32, 3, False) + bn(32) + module(32, 16, 16, 24, 8, 12, 12) + module(64, 24, 24, 40, 8, 16, 16)
             + module(96, 32, 32, 48, 12, 24, 24) + 128 * 10 + 10)
    assert inception_small().num_parameters() == total == 57_010


@pytest.mark.parametrize("make", [lambda: dropout_cnn(0.5), resnet_small, inception_small],
                         ids=["dropout_cnn", "resnet_small", "inception_small"])
def test_forward_backward_shapes_and_decay_groups(make, rng):
    model = make()
    arena = model.flatten()
    x = rng.random((3, 1, 28, 28), dtype=np.float32)
    y = model(x)
    assert y.shape == (3, 10) and y.dtype == np.float32 and np.isfinite(y).all()
    dx = model.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert dx.shape == x.shape
    assert np.abs(arena.grads).sum() > 0
    for e in arena.entries:  # weights of convolutions and linear layers decay; biases and BN scales do not
        assert e.decay == (e.name.endswith("weight") and len(e.shape) > 1), e.name
    assert "(N, 10)" in str(model) and "?" not in str(model).split("\n")[1]


@pytest.mark.oracle
def test_dropout_cnn_matches_torch(rng):
    import torch
    import torch.nn as nn

    theirs = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                           nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.0), nn.Linear(1600, 10))
    ours = dropout_cnn(0.0)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    dy = rng.standard_normal((8, 10)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy))
    y = ours(x)
    dx = ours.backward(dy)

    def rel(a, b):
        return np.linalg.norm(np.float64(a) - b) / np.linalg.norm(b)

    assert rel(y, yt.detach().numpy()) < 1e-5
    assert rel(dx, xt.grad.numpy()) < 1e-5
    tgrads = {k: v.grad.numpy() for k, v in theirs.named_parameters()}
    for name, g in ours.named_gradients():
        assert rel(g, tgrads[name]) < 1e-5, name


def test_short_training_lowers_the_loss():
    """Twenty Adam steps on 256 bundled MNIST images: the training loss must fall well below its start."""
    data = gn.data.mnist_sample("train", flatten=False)
    x, y = data.x[:256], data.y[:256]
    gn.seed(1)
    model = dropout_cnn(0.2)
    opt = gn.optim.Adam(model, lr=1e-3)
    loss_fn = gn.losses.CrossEntropy()
    model.need_input_grad = False
    losses = []
    for epoch in range(5):
        for xb, yb in gn.data.batches(x, y, 64, rng=epoch):
            model.train()
            losses.append(float(loss_fn(model(xb), yb)))
            model.backward(loss_fn.backward())
            opt.step()
    assert losses[0] > 2.0 and np.mean(losses[-4:]) < 0.6 * losses[0], losses


@pytest.mark.gpu
def test_dropout_cnn_gpu_matches_cpu_in_eval(rng):
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    gn.use("cpu")
    cpu = dropout_cnn(0.5).eval()
    y = cpu(x)
    gn.use("gpu")
    gpu = dropout_cnn(0.5).eval()
    gpu.load_state_dict(cpu.state_dict())
    yg = backend.to_numpy(gpu(backend.to_device(x)))
    assert np.linalg.norm(yg - y) / np.linalg.norm(y) < 1e-5
