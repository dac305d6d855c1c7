"""Conv2d: PyTorch's conv2d as the oracle (forward and backward), finite-difference gradients in
float64, initialization, the parameter arena, printing and clear errors.

Oracle tolerance: ‖ours − torch‖ / ‖torch‖ < 1e-5 in float32. Each output and gradient element is
a sum of at most a few hundred float32 products; the two libraries add in different orders, so
they differ by rounding, about √K·2⁻²⁴ ≈ 1e-6 relative, while any indexing mistake is of order 1.
"""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.testing import gradcheck

RTOL = 1e-5

# (N, C, H, W), out_channels, kernel, stride, padding, bias
GEOMETRIES = [
    ((4, 3, 9, 9), 5, 3, 1, 0, True),
    ((2, 1, 7, 5), 4, 3, 2, 1, True),              # single channel, odd sizes, stride and padding
    ((3, 2, 8, 11), 6, (3, 2), (2, 1), (1, 0), True),  # rectangular everything
    ((2, 4, 6, 6), 3, 1, 1, 0, False),             # 1×1, no bias
    ((1, 3, 5, 7), 2, 5, 3, 2, True),              # kernel as large as the padded input allows
    ((5, 8, 13, 13), 16, 3, 1, 1, True),
    ((40, 16, 5, 5), 20, 3, 1, 1, True),          # small outputs of many images: the batch in the lanes
    ((36, 12, 8, 8), 24, 3, 2, 1, False),         # ... at stride 2
]


def rel(a, b):
    a, b = np.asarray(backend.to_numpy(a), np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _random_bias(conv, rng):
    if conv.has_bias:
        conv.bias[...] = backend.to_device(rng.standard_normal(conv.out_channels).astype(np.float32), conv.device)


@pytest.mark.oracle
@pytest.mark.parametrize("shape,oc,k,s,p,bias", GEOMETRIES)
def test_matches_torch_forward_and_backward(shape, oc, k, s, p, bias, rng, device):
    import torch
    import torch.nn.functional as F

    conv = gn.Conv2d(shape[1], oc, k, stride=s, padding=p, bias=bias)
    _random_bias(conv, rng)
    x = rng.standard_normal(shape).astype(np.float32)
    y = conv(backend.to_device(x))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = conv.backward(backend.to_device(dy))

    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(backend.to_numpy(conv.weight).copy()).requires_grad_(True)
    bt = torch.from_numpy(backend.to_numpy(conv.bias).copy()).requires_grad_(True) if bias else None
    yt = F.conv2d(xt, wt, bt, stride=s, padding=p)
    yt.backward(torch.from_numpy(dy))
    assert y.shape == tuple(yt.shape) and y.dtype == np.float32
    assert rel(y, yt.detach().numpy()) < RTOL
    assert rel(dx, xt.grad.numpy()) < RTOL
    assert rel(conv._grads["weight"], wt.grad.numpy()) < RTOL
    if bias:
        assert rel(conv._grads["bias"], bt.grad.numpy()) < RTOL


@pytest.mark.oracle
def test_weights_load_from_torch_state_dict_without_transpose(rng):
    import torch

    theirs = torch.nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=1)
    ours = gn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=1)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    assert rel(ours(x), theirs(torch.from_numpy(x)).detach().numpy()) < RTOL


@pytest.mark.parametrize("shape,oc,k,s,p,bias", [
    ((2, 1, 7, 5), 3, 3, 2, 1, True),
    ((1, 3, 6, 5), 2, (2, 3), (1, 2), (0, 1), False),
    ((2, 2, 5, 5), 2, 1, 1, 0, True),
    ((1, 2, 9, 8), 3, 4, 3, 2, True),
    ((16, 8, 4, 4), 3, 3, 1, 1, True),  # the batch in the lanes
])
def test_gradcheck_float64(shape, oc, k, s, p, bias, rng):
    conv = gn.Conv2d(shape[1], oc, k, stride=s, padding=p, bias=bias)
    _random_bias(conv, rng)
    report = gradcheck(conv, rng.standard_normal(shape), max_checks=60)
    assert set(report) == {"input", "weight"} | ({"bias"} if bias else set())


def test_batch_size_changes_reuse_scratch_correctly(rng):
    """Scratch buffers are reused across calls; a smaller then a larger batch still gives
    the same results as a fresh layer."""
    conv = gn.Conv2d(2, 3, 3, padding=1)
    fresh = gn.Conv2d(2, 3, 3, padding=1)
    fresh.load_state_dict(conv.state_dict())
    for n in (5, 2, 7, 5):
        x = rng.standard_normal((n, 2, 6, 6)).astype(np.float32)
        dy = rng.standard_normal((n, 3, 6, 6)).astype(np.float32)
        y, dx = conv(x), conv.backward(dy)
        g = conv._grads["weight"].copy()
        np.testing.assert_array_equal(y, fresh(x))
        np.testing.assert_array_equal(dx, fresh.backward(dy))
        np.testing.assert_array_equal(g, fresh._grads["weight"])
        fresh = gn.Conv2d(2, 3, 3, padding=1)
        fresh.load_state_dict(conv.state_dict())


def test_batch_size_changes_between_the_direct_layouts(rng):
    """40 images of 5×5 put the batch in the lanes, 3 and 17 do not (kernels/im2col/lanes.py): the
    layer's results follow its batch, whichever layout its scratch last held."""
    from gpunet.kernels.im2col import lanes

    conv = gn.Conv2d(16, 8, 3, padding=1)
    sizes = (40, 3, 40, 17)
    assert [lanes.chosen((n, 16, 5, 5), 3, 3, 1, 1, 1, 1, np.float32) for n in sizes] == [True, False, True, False]
    for n in sizes:
        fresh = gn.Conv2d(16, 8, 3, padding=1)
        fresh.load_state_dict(conv.state_dict())
        x = rng.standard_normal((n, 16, 5, 5)).astype(np.float32)
        dy = rng.standard_normal((n, 8, 5, 5)).astype(np.float32)
        y, dx = conv(x), conv.backward(dy)
        np.testing.assert_array_equal(y, fresh(x))
        np.testing.assert_array_equal(dx, fresh.backward(dy))
        np.testing.assert_array_equal(conv._grads["weight"], fresh._grads["weight"])


def test_outputs_are_fresh_arrays(rng):
    conv = gn.Conv2d(1, 2, 3)
    x = rng.standard_normal((2, 1, 5, 5)).astype(np.float32)
    y1 = conv(x)
    keep = y1.copy()
    conv(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))
    np.testing.assert_array_equal(y1, keep)


def test_he_normal_init_bias_zero_and_names():
    gn.seed(3)
    conv = gn.Conv2d(16, 256, 3)
    assert conv.weight.shape == (256, 16, 3, 3) and conv.weight.dtype == np.float32
    fan_in = 16 * 9
    assert np.std(conv.weight) == pytest.approx(np.sqrt(2 / fan_in), rel=0.03)
    assert abs(np.mean(conv.weight)) < 0.01
    np.testing.assert_array_equal(conv.bias, 0)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    other = gn.Conv2d(16, 4, 3, init="zeros", bias=False)
    assert not other.weight.any() and [n for n, _ in other.named_parameters()] == ["weight"]


def test_arena_views_and_bias_without_decay(rng):
    model = gn.Sequential(gn.Conv2d(2, 3, 3), gn.ReLU(), gn.Conv2d(3, 2, 1))
    arena = model.flatten()
    assert [(e.name, e.decay) for e in arena.entries] == [
        ("0.weight", True), ("2.weight", True), ("0.bias", False), ("2.bias", False)]
    x = rng.standard_normal((3, 2, 5, 5)).astype(np.float32)
    y = model(x)
    model.backward(rng.standard_normal(y.shape).astype(np.float32))
    e = arena.entry("0.weight")
    flat = arena.grads[e.offset:e.offset + e.size].reshape(e.shape)
    assert np.shares_memory(flat, model[0]._grads["weight"]) and np.abs(flat).sum() > 0
    e = arena.entry("2.bias")
    assert np.shares_memory(arena.params[e.offset:e.offset + e.size], model[2].bias)


def test_need_input_grad_false_skips_dx_and_keeps_parameter_gradients(rng):
    conv = gn.Conv2d(2, 3, 3, stride=2, padding=1)
    x = rng.standard_normal((2, 2, 7, 7)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    conv(x)
    dx = conv.backward(dy)
    g = {k: v.copy() for k, v in conv.named_gradients()}
    conv.need_input_grad = False
    conv(x)
    assert conv.backward(dy) is None
    for k, v in conv.named_gradients():
        np.testing.assert_array_equal(v, g[k])
    assert dx.shape == x.shape


def test_print_shows_output_shapes(rng):
    model = gn.Sequential(gn.Conv2d(1, 4, 3, stride=2, padding=1), gn.ReLU())
    model(rng.standard_normal((2, 1, 9, 9)).astype(np.float32))
    text = str(model)
    assert "Conv2d(1, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))" in text
    assert "(N, 4, 5, 5)" in text and "40" in text


@pytest.mark.parametrize("kwargs,match", [
    (dict(stride=0), r"Conv2d: stride must be an integer >= 1 or a pair of them, got 0"),
    (dict(stride=(1, 0)), "Conv2d: stride must be"),
    (dict(kernel_size=0), "Conv2d: kernel_size must be an integer >= 1"),
    (dict(padding=-1), "Conv2d: padding must be an integer >= 0"),
    (dict(in_channels=0), "Conv2d: in_channels must be a positive integer"),
    (dict(out_channels=2.5), "Conv2d: out_channels must be a positive integer"),
])
def test_bad_arguments_name_the_layer(kwargs, match):
    args = dict(in_channels=1, out_channels=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gn.Conv2d(**args)


def test_bad_inputs_name_the_layer(rng):
    model = gn.Sequential(gn.Conv2d(3, 4, 5, padding=1))
    with pytest.raises(ValueError, match=r"Conv2d \(layer 0\): expected a 4-D input \(N, C, H, W\), "
                                         r"got shape \(3, 8, 8\) \(add a batch axis"):
        model(rng.standard_normal((3, 8, 8)).astype(np.float32))
    with pytest.raises(ValueError, match=r"Conv2d \(layer 0\): expected 3 input channels, got input of shape "
                                         r"\(2, 1, 8, 8\) with 1 channels"):
        model(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    with pytest.raises(ValueError, match=r"Conv2d \(layer 0\): kernel 5x5 is larger than the padded input 4x5"):
        model(rng.standard_normal((2, 3, 2, 3)).astype(np.float32))
    with pytest.raises(TypeError, match="Conv2d .*floating-point"):
        model(np.ones((2, 3, 8, 8), np.uint8))
    conv = gn.Conv2d(1, 1, 3)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        conv.backward(np.ones((1, 1, 2, 2), np.float32))
    conv(rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
    with pytest.raises(ValueError, match=r"backward expected dy of shape \(1, 1, 2, 2\)"):
        conv.backward(np.ones((1, 1, 3, 3), np.float32))


@pytest.mark.gpu
def test_gpu_matches_cpu(rng):
    x = rng.standard_normal((4, 3, 10, 9)).astype(np.float32)
    dy = rng.standard_normal((4, 5, 5, 5)).astype(np.float32)
    gn.use("cpu")
    cpu = gn.Conv2d(3, 5, 3, stride=2, padding=1)
    _random_bias(cpu, rng)
    y, dx = cpu(x), cpu.backward(dy)
    gn.use("gpu")
    gpu = gn.Conv2d(3, 5, 3, stride=2, padding=1)
    gpu.load_state_dict(cpu.state_dict())
    assert gpu.device == "gpu"
    yg = gpu(backend.to_device(x))
    dxg = gpu.backward(backend.to_device(dy))
    assert rel(yg, y) < RTOL and rel(dxg, dx) < RTOL
    assert rel(gpu._grads["weight"], cpu._grads["weight"]) < RTOL
    assert rel(gpu._grads["bias"], cpu._grads["bias"]) < RTOL
