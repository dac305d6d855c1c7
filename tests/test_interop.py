"""PyTorch weights both ways (gpunet.interop): the same architecture built in both libraries,
weights copied each way, outputs compared in eval mode."""
from __future__ import annotations

import numpy as np
import pytest

import gpunet as gn

pytestmark = pytest.mark.oracle


def _torch():
    import torch
    import torch.nn as nn

    return torch, nn


def _pair(name):
    """(gpunet model, the same architecture in PyTorch, one batch of input)."""
    torch, nn = _torch()
    rng = np.random.default_rng(0)
    if name == "mlp":
        g = gn.Sequential(gn.Linear(20, 32), gn.BatchNorm1d(32), gn.ReLU(), gn.Linear(32, 16), gn.LayerNorm(16),
                          gn.Tanh(), gn.Linear(16, 5))
        t = nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16), nn.LayerNorm(16),
                          nn.Tanh(), nn.Linear(16, 5))
        return g, t, rng.normal(size=(8, 20)).astype(np.float32)
    if name == "cnn":
        g = gn.Sequential(gn.Conv2d(3, 8, 3, padding=1), gn.BatchNorm2d(8), gn.ReLU(), gn.MaxPool2d(2),
                          gn.Conv2d(8, 4, 3, stride=2, bias=False), gn.Flatten(), gn.Linear(4 * 3 * 3, 6))
        t = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 4, 3, stride=2, bias=False), nn.Flatten(), nn.Linear(4 * 3 * 3, 6))
        return g, t, rng.normal(size=(4, 3, 16, 16)).astype(np.float32)
    if name == "resnet_small":
        class Block(nn.Module):  # gpunet's Residual: y = block(x) + shortcut(x), children so named
            def __init__(self, c_in, c_out, stride):
                super().__init__()
                self.block = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                                           nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
                                           nn.BatchNorm2d(c_out))
                self.shortcut = None
                if stride != 1 or c_in != c_out:
                    self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                                  nn.BatchNorm2d(c_out))

            def forward(self, x):
                return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

        class GlobalAvg(nn.Module):
            def forward(self, x):
                return x.mean(dim=(2, 3))

        layers = [nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
        c = 16
        for i, w in enumerate((16, 32, 64)):
            layers += [Block(c, w, 1 if i == 0 else 2), nn.ReLU()]
            c = w
        t = nn.Sequential(*layers, GlobalAvg(), nn.Linear(64, 10))
        return gn.models.resnet_small(), t, rng.normal(size=(4, 1, 28, 28)).astype(np.float32)
    raise KeyError(name)


def _randomize_statistics(torch_model):
    """Running statistics away from 0 and 1, so that a mix-up of buffers shows in the outputs."""
    torch, nn = _torch()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.num_batches_tracked.fill_(7)
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def _outputs(g, t, x):
    torch, _ = _torch()
    g.eval()
    t.eval()
    with torch.no_grad():
        yt = t(torch.from_numpy(x)).numpy()
    return gn.to_numpy(g(x)), yt


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet_small"])
def test_pytorch_weights_into_gpunet(name):
    g, t, x = _pair(name)
    _randomize_statistics(t)
    missing, unexpected = gn.interop.from_torch_state_dict(g, t.state_dict())
    assert missing == [] and unexpected == []
    yg, yt = _outputs(g, t, x)
    assert np.max(np.abs(yg - yt)) < 1e-5
    for k, v in t.state_dict().items():  # every value arrived unchanged, the counter too
        np.testing.assert_array_equal(gn.to_numpy(g.state_dict()[k]), v.numpy(), err_msg=k)


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet_small"])
def test_gpunet_weights_into_pytorch(name):
    g, t, x = _pair(name)
    gn.seed(5)
    ys = np.arange(len(x)) % 5
    trainer = gn.Trainer(g, "cross_entropy", gn.optim.Adam(g, lr=1e-2), metrics=[])
    for _ in range(3):  # trained weights and running statistics, not the initial ones
        trainer.train_step(x, ys)
    sd = gn.interop.to_torch_state_dict(g)
    assert list(sd) == list(t.state_dict())
    t.load_state_dict(sd, strict=True)
    yg, yt = _outputs(g, t, x)
    assert np.max(np.abs(yg - yt)) < 1e-5
    assert int(t.state_dict()[next(k for k in sd if k.endswith("num_batches_tracked"))]) == 3


def test_wrong_inputs_name_the_problem():
    torch, _ = _torch()
    g = gn.Sequential(gn.Linear(3, 2))
    with pytest.raises(TypeError, match="expected a mapping"):
        gn.interop.from_torch_state_dict(g, [1, 2])
    with pytest.raises(TypeError, match="'0.weight' is ndarray, expected a torch.Tensor"):
        gn.interop.from_torch_state_dict(g, {"0.weight": np.zeros((2, 3))})
    with pytest.raises(KeyError, match="missing keys"):
        gn.interop.from_torch_state_dict(g, {"0.weight": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="has shape"):
        gn.interop.from_torch_state_dict(g, {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(2)})
