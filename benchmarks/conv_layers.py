"""The layers of ``dropout_cnn`` (or, with ``--layers resnet_small``, the distinct convolutions
and two batch norms of ``resnet_small``) one at a time, forward and backward, gpunet against
PyTorch (each library in a fresh process of its own, both alive, layer by layer alternating; same
thread count), plus where gpunet's convolution time goes (``--phases``).

    python benchmarks/conv_layers.py [--threads N] [--json out.json] [--repeat 30] [--phases] [--step]
                                     [--layers dropout_cnn|resnet_small]
                                     [--step-model dropout_cnn|resnet_small] [--steps 200]

Shapes are those of one training step at batch 64. Forward: the median
time of a forward call; backward: the median time of a backward call, each after an untimed
forward (PyTorch needs a fresh graph for every backward). The first convolution skips its input gradient,
as in training; the others compute it. "conv+relu" rows are a Conv2d followed by a ReLU (in
gpunet a Sequential, which fuses the pair: see gpunet/layers/conv.py).

``--phases`` times the pieces of the convolution computed as one product over the batch
(kernels/im2col/composed.py: im2col, the GEMM, the bias and layout pass, the layout pass of dy
with db, the dW and dX GEMMs, col2im) — the path gpunet took before its convolution became one
parallel region per pass — beside that fused region's forward and backward (records with
``phase_s``, gpunet only).

``--step`` times each layer of ``dropout_cnn(0.2)`` (or ``--step-model resnet_small``) inside
whole training steps (forward, loss, backward, Adam), where a layer's inputs are not in cache and
the thread pools hand over to each other (records ``step_<path>_<layer>_fwd``/``_bwd`` with
``step_s``, gpunet only; the path names the layer inside its blocks, e.g. ``3.block.0``; a ReLU
fused into the layer before it shows as 0; ``step_rest`` is the step less its layers' time: the
loss, the optimizer, the residual sums). It runs against whichever gpunet is imported, so the
same script profiles an older checkout (``PYTHONPATH=<checkout>``).
"""
from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Worker, isolated, parser, print_table, record, set_threads, write_json  # noqa: E402

BATCH = 64
# name: (input shape, layer spec, whether the layer's input gradient is computed); a conv spec is
# ("conv", C, OC, kernel, stride, padding, bias)
LAYERS = {
    "conv1": ((BATCH, 1, 28, 28), ("conv", 1, 32, 3, 1, 0, True), False),
    "relu1": ((BATCH, 32, 26, 26), ("relu",), True),
    "pool1": ((BATCH, 32, 26, 26), ("pool",), True),
    "conv1+relu": ((BATCH, 1, 28, 28), ("conv_relu", 1, 32, 3, 1, 0, True), False),
    "conv2": ((BATCH, 32, 13, 13), ("conv", 32, 64, 3, 1, 0, True), True),
    "relu2": ((BATCH, 64, 11, 11), ("relu",), True),
    "pool2": ((BATCH, 64, 11, 11), ("pool",), True),
    "conv2+relu": ((BATCH, 32, 13, 13), ("conv_relu", 32, 64, 3, 1, 0, True), True),
}
# the distinct layers of resnet_small (widths 16, 32, 64; convolutions without bias)
RESNET_LAYERS = {
    "stem_1to16": ((BATCH, 1, 28, 28), ("conv", 1, 16, 3, 1, 1, False), False),
    "conv_16to16_28": ((BATCH, 16, 28, 28), ("conv", 16, 16, 3, 1, 1, False), True),
    "conv_16to32_s2": ((BATCH, 16, 28, 28), ("conv", 16, 32, 3, 2, 1, False), True),
    "conv_32to32_14": ((BATCH, 32, 14, 14), ("conv", 32, 32, 3, 1, 1, False), True),
    "conv1x1_16to32_s2": ((BATCH, 16, 28, 28), ("conv", 16, 32, 1, 2, 0, False), True),
    "conv_32to64_s2": ((BATCH, 32, 14, 14), ("conv", 32, 64, 3, 2, 1, False), True),
    "conv_64to64_7": ((BATCH, 64, 7, 7), ("conv", 64, 64, 3, 1, 1, False), True),
    "conv1x1_32to64_s2": ((BATCH, 32, 14, 14), ("conv", 32, 64, 1, 2, 0, False), True),
    "bn_16_28": ((BATCH, 16, 28, 28), ("bn", 16), True),
    "bn_64_7": ((BATCH, 64, 7, 7), ("bn", 64), True),
}
TABLES = {"dropout_cnn": LAYERS, "resnet_small": RESNET_LAYERS}


def _median(fn, repeat, setup=None):
    """Median seconds of ``fn()``, each call after an untimed ``setup()`` when given."""
    times = []
    for i in range(repeat + 5):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _layer(spec, nn):
    """The layer of ``spec`` from ``nn``: gpunet or torch.nn, whose layers here share names and arguments."""
    kind = spec[0]
    if kind in ("conv", "conv_relu"):
        c, oc, k, stride, pad, bias = spec[1:]
        conv = nn.Conv2d(c, oc, k, stride=stride, padding=pad, bias=bias)
        return conv if kind == "conv" else nn.Sequential(conv, nn.ReLU())
    return {"relu": nn.ReLU, "pool": lambda: nn.MaxPool2d(2), "bn": lambda: nn.BatchNorm2d(spec[-1])}[kind]()


def layer_times(lib, table, name, threads, repeat) -> tuple[float, float]:
    """(forward, backward) median seconds of layer ``name`` of ``table`` in library ``lib``."""
    shape, spec, input_grad = TABLES[table][name]
    set_threads(threads)
    if lib == "gpunet":
        import numpy as np

        import gpunet as gn

        gn.seed(0)
        layer = _layer(spec, gn)
        layer.need_input_grad = input_grad
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        dy = np.random.default_rng(1).standard_normal(layer(x).shape).astype(np.float32)
        return (_median(lambda: layer(x), repeat),
                _median(lambda: layer.backward(dy), repeat, setup=lambda: layer(x)))
    import torch

    torch.manual_seed(0)
    layer = _layer(spec, torch.nn)
    x = torch.randn(shape, requires_grad=input_grad)
    dy = torch.randn(layer(x).shape)
    held = {}
    return (_median(lambda: layer(x), repeat),
            _median(lambda: held["y"].backward(dy), repeat, setup=lambda: held.update(y=layer(x))))


def gpunet_phases(threads, repeat) -> dict:
    """Seconds per piece of each convolution, computed as one product over the batch, and of the
    fused region (``conv2d_forward``/``conv2d_backward`` on the CPU tier)."""
    import numpy as np

    from gpunet.kernels.common.scratch import Scratch
    from gpunet.ops import im2col as ops

    set_threads(threads)
    rng = np.random.default_rng(0)
    out = {}
    for conv, (c, oc, h) in {"conv1": (1, 32, 28), "conv2": (32, 64, 13)}.items():
        x = rng.standard_normal((BATCH, c, h, h)).astype(np.float32)
        w = rng.standard_normal((oc, c, 3, 3)).astype(np.float32)
        b = rng.standard_normal(oc).astype(np.float32)
        oh = h - 2
        k, m = c * 9, BATCH * oh * oh
        w2 = w.reshape(oc, k)
        cols, yc = np.empty((k, m), np.float32), np.empty((oc, m), np.float32)
        dy = rng.standard_normal((BATCH, oc, oh, oh)).astype(np.float32)
        db, dw = np.empty(oc, np.float32), np.empty((oc, k), np.float32)
        pieces = {
            "im2col": lambda: ops.im2col(x, 3, 3, (1, 1), (0, 0), out=cols),
            "gemm_y": lambda: np.matmul(w2, cols, out=yc),
            "bias_layout": lambda: ops.cnhw_to_nchw(yc, b, dy.shape),
            "dy_layout_db": lambda: ops.nchw_to_cnhw(dy, out=yc, dbias=db),
            "gemm_dw": lambda: np.matmul(yc, cols.T, out=dw),
            "gemm_dx": lambda: np.matmul(w2.T, yc, out=cols),
            "col2im": lambda: ops.col2im(cols, x.shape, 3, 3, (1, 1), (0, 0)),
        }
        for piece, fn in pieces.items():
            out[f"{conv}_{piece}"] = _median(fn, repeat)
        scratch = Scratch()
        out[f"{conv}_fused_forward"] = _median(lambda: ops.conv2d_forward(x, w, b, (1, 1), (0, 0), True, scratch), repeat)
        y = ops.conv2d_forward(x, w, b, (1, 1), (0, 0), True, scratch)
        out[f"{conv}_fused_backward"] = _median(
            lambda: ops.conv2d_backward(x, w, dy, y, dw.reshape(w.shape), db, conv == "conv2", (1, 1), (0, 0), scratch),
            repeat, setup=lambda: ops.conv2d_forward(x, w, b, (1, 1), (0, 0), True, scratch))
    return out


def _leaves(layer, path=""):
    """(path, layer) for every layer without children, in order."""
    children = layer._children
    if not children:
        yield path, layer
    for name, child in children.items():
        yield from _leaves(child, f"{path}.{name}" if path else name)


def gpunet_step(threads, steps, model_name="dropout_cnn") -> dict:
    """Seconds per step spent in each layer's forward and backward during training steps."""
    import collections

    import numpy as np

    import gpunet as gn

    set_threads(threads)
    gn.seed(0)
    model = gn.models.resnet_small() if model_name == "resnet_small" else gn.models.dropout_cnn(0.2)
    model.need_input_grad = False
    opt = gn.optim.Adam(model, lr=1e-3)
    loss_fn = gn.losses.CrossEntropy(check_labels=False)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    spent = collections.defaultdict(float)

    def timed(key, fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            spent[key] += time.perf_counter() - t0
            return out
        return run

    keys = []
    for path, layer in _leaves(model):
        key = f"{path}_{type(layer).__name__}"
        keys += [f"{key}_fwd", f"{key}_bwd"]
        # the fusing layers' forward calls forward_fused: time that one alone
        forward = "forward_fused" if hasattr(layer, "forward_fused") else "forward"
        for method, direction in ((forward, "fwd"), ("backward", "bwd")):
            layer.__dict__[method] = timed(f"{key}_{direction}", getattr(layer, method))

    def step():
        model.train()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
    for _ in range(10):
        step()
    spent.clear()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    total = (time.perf_counter() - t0) / steps
    layers = {k: spent[k] / steps for k in keys}
    return {"whole_step": total, **layers, "rest": total - sum(layers.values())}


def main(argv=None):
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=30, help="timed calls per layer and pass (median)")
    p.add_argument("--phases", action="store_true", help="also time the pieces of gpunet's convolution")
    p.add_argument("--step", action="store_true", help="also time each layer inside training steps (gpunet)")
    p.add_argument("--steps", type=int, default=200, help="training steps timed with --step")
    p.add_argument("--layers", choices=tuple(TABLES), default="dropout_cnn",
                   help="whose layers the table times (resnet_small: its distinct convolutions and two batch norms)")
    p.add_argument("--step-model", choices=("dropout_cnn", "resnet_small"), default="dropout_cnn",
                   help="the network --step profiles")
    args = p.parse_args(argv)
    if args.device != "cpu":
        p.error("conv_layers.py times the CPU only (--device cpu)")
    threads = set_threads(args.threads)
    records = []
    with Worker("gpunet") as ours, Worker("torch") as theirs:  # alive together: layer by layer, alternating
        for name in TABLES[args.layers]:
            g = ours.call(layer_times, "gpunet", args.layers, name, threads, args.repeat)
            t = theirs.call(layer_times, "torch", args.layers, name, threads, args.repeat)
            for i, direction in enumerate(("fwd", "bwd")):
                records.append(record(f"layer_{name}_{direction}", "cpu", g[i], t[i], threads=threads, batch=BATCH))
    print_table(records, f"{args.layers}'s layers at batch {BATCH}, forward and backward ({threads} CPU threads)")
    if args.phases:
        phases = isolated("gpunet", gpunet_phases, threads, args.repeat)
        print("\ngpunet's convolution, piece by piece (ms):")
        for name, s in phases.items():
            print(f"  {name:<24} {s * 1e3:8.3f}")
            records.append({"name": f"phase_{name}", "device": "cpu", "phase_s": s, "threads": threads})
    if args.step:
        spent = isolated("gpunet", gpunet_step, threads, args.steps, args.step_model)
        print(f"\ngpunet's {args.step_model}, each layer inside {args.steps} training steps (ms per step):")
        for name, sec in spent.items():
            print(f"  {name:<24} {sec * 1e3:8.3f}")
            records.append({"name": f"step_{name}", "device": "cpu", "step_s": sec, "threads": threads})
    write_json(records, args.json)


if __name__ == "__main__":
    main()
