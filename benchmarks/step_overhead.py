"""Per-step host overhead: a model so small that its kernels are trivial and the glue around them
(layer calls, checks, dispatch, the optimizer step) is what a step costs.

Two steps, gpunet against PyTorch, one CPU thread, each library in a fresh process of its own
(see common.py), median of ``--blocks`` blocks of ``--steps`` steps after a warm-up block:

- ``tiny_step``: MLP 64-64-10 (ReLU) at batch 32 with Adam;
- ``tiny_bn_dropout_clip_step``: the same with BatchNorm1d and Dropout(0.2) after the hidden
  layer and Adam with clip_norm=1.0.

gpunet runs the Trainer's own step (``Trainer.train_step``: forward, loss, backward, optimizer
step, nothing read back); PyTorch the usual zero_grad / forward / cross_entropy / backward /
(clip_grad_norm_) / step. Both cycle over the same 16 random batches already in memory.

Rows ending ``_torch_first`` time gpunet's step in a process that imported torch before gpunet,
as a script using both libraries does (gpunet/cpu_threads.py: Numba's OpenMP layer with a runtime
of its own beside torch's copy of libgomp, or its ``workqueue`` layer where it would share one).

``layer_overhead`` rows (gpunet only): the time of one layer call (forward and backward) minus the
time of the bare kernel calls it makes, on preallocated arrays, for BatchNorm1d (32, 64), Dropout
on (32, 64) and Linear 64→64 at batch 32. Target (issue 9): tiny steps ≤ 0.3× PyTorch's time,
layer-over-kernel overhead ≤ 10 µs.

    python benchmarks/step_overhead.py [--blocks 7] [--steps 300] [--json out.json]
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import isolated, parser, print_table, record, set_threads, write_json  # noqa: E402

BATCH, N_IN, HIDDEN, N_OUT, N_BATCHES = 32, 64, 64, 10, 16


def _data():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((N_BATCHES, BATCH, N_IN)).astype(np.float32)
    ys = rng.integers(0, N_OUT, (N_BATCHES, BATCH)).astype(np.int64)
    return xs, ys


def _mlp(nn, bn_dropout: bool):
    """The MLP in either library: ``nn`` is ``gpunet`` or ``torch.nn`` (same layer names)."""
    extra = lambda layer: [layer] if bn_dropout else []  # noqa: E731
    return nn.Sequential(nn.Linear(N_IN, HIDDEN), *extra(nn.BatchNorm1d(HIDDEN)), nn.ReLU(),
                         *extra(nn.Dropout(0.2)), nn.Linear(HIDDEN, N_OUT))


def _blocks(step, blocks, steps):
    """Median seconds per step over ``blocks`` timed blocks of ``steps`` steps (one warm-up block)."""
    times = []
    for b in range(blocks + 1):
        t0 = time.perf_counter()
        for i in range(steps):
            step(i % N_BATCHES)
        if b:
            times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def gpunet_step_time(bn_dropout: bool, blocks: int, steps: int) -> float:
    import gpunet as gn

    set_threads(1)
    gn.use("cpu")
    gn.seed(0)
    model = _mlp(gn, bn_dropout)
    opt = gn.optim.Adam(model, lr=1e-3, clip_norm=1.0 if bn_dropout else None)
    trainer = gn.Trainer(model, gn.losses.CrossEntropy(), opt, metrics=[])
    xs, ys = _data()
    model.train()
    model.need_input_grad = False  # as the Trainer does in fit
    return _blocks(lambda i: trainer.train_step(xs[i], ys[i]), blocks, steps)


def torch_step_time(bn_dropout: bool, blocks: int, steps: int) -> float:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    set_threads(1)
    torch.manual_seed(0)
    model = _mlp(nn, bn_dropout)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    params = list(model.parameters())
    xs, ys = (torch.from_numpy(a) for a in _data())
    model.train()

    def step(i):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xs[i]), ys[i])
        loss.backward()
        if bn_dropout:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return _blocks(step, blocks, steps)


def layer_overheads(blocks: int, steps: int) -> list[dict]:
    """(layer call − bare kernel calls) for BatchNorm1d, Dropout and Linear, in seconds."""
    import gpunet as gn
    from gpunet.ops.registry import OPS

    set_threads(1)
    gn.use("cpu")
    gn.seed(0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((BATCH, HIDDEN)).astype(np.float32)
    dy = rng.standard_normal((BATCH, HIDDEN)).astype(np.float32)
    out = []

    bn = gn.BatchNorm1d(HIDDEN)
    k = OPS["batchnorm"].module("numba_cpu")
    x3, dy3 = x.reshape(BATCH, HIDDEN, 1), dy.reshape(BATCH, HIDDEN, 1)
    y3, dx3 = np.empty_like(x3), np.empty_like(x3)
    mean, invstd = np.empty(HIDDEN), np.empty(HIDDEN)
    w, b, rm, rv = (np.ones(HIDDEN, np.float32), np.zeros(HIDDEN, np.float32),
                    np.zeros(HIDDEN, np.float32), np.ones(HIDDEN, np.float32))
    dw, db = np.empty_like(w), np.empty_like(w)

    def bn_kernel(_):
        k.forward_train(x3, w, b, rm, rv, y3, mean, invstd, 1e-5, 0.1, True)
        k.backward(dy3, x3, w, mean, invstd, dx3, dw, db, True)

    def bn_layer(_):
        bn.forward(x)
        bn.backward(dy)

    out.append(("batchnorm1d", bn_layer, bn_kernel))

    drop = gn.Dropout(0.2)
    kd = OPS["dropout"].module("numba_cpu")
    from gpunet.kernels.common.philox import keep_threshold

    yd, mask, dxd = np.empty_like(x), np.empty((x.size + 7) // 8, np.uint8), np.empty_like(x)
    thr = keep_threshold(0.2)

    def drop_kernel(i):
        kd.forward(x, yd, mask, 0, 0, i, thr, 1.25)
        kd.backward(dy, mask, dxd, 1.25)

    def drop_layer(_):
        drop.forward(x)
        drop.backward(dy)

    out.append(("dropout", drop_layer, drop_kernel))

    lin = gn.Linear(HIDDEN, HIDDEN)
    W, bias = lin.weight.copy(), lin.bias.copy()
    dW, dbias = np.empty_like(W), np.empty_like(bias)

    def lin_kernel(_):
        y = np.matmul(x, W.T)
        y += bias
        np.matmul(dy.T, x, out=dW)
        dy.sum(axis=0, out=dbias)
        np.matmul(dy, W)

    def lin_layer(_):
        lin.forward(x)
        lin.backward(dy)

    out.append(("linear", lin_layer, lin_kernel))
    records = []
    for name, layer, kern in out:
        layer_s, kernel_s = _blocks(layer, blocks, steps), _blocks(kern, blocks, steps)
        records.append({"name": f"layer_overhead_{name}", "device": "cpu", "layer_s": layer_s,
                        "kernel_s": kernel_s, "overhead_us": (layer_s - kernel_s) * 1e6})
    return records


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=7, help="timed blocks (median)")
    p.add_argument("--steps", type=int, default=300, help="steps per block")
    args = p.parse_args(argv)
    records = []
    for name, bn_dropout in (("tiny_step", False), ("tiny_bn_dropout_clip_step", True)):
        g = isolated("gpunet", gpunet_step_time, bn_dropout, args.blocks, args.steps)
        t = isolated("torch", torch_step_time, bn_dropout, args.blocks, args.steps)
        records.append(record(name, "cpu", g, t, batch=BATCH, threads=1))
        g = isolated("torch", gpunet_step_time, bn_dropout, args.blocks, args.steps)
        records.append(record(f"{name}_torch_first", "cpu", g, t, batch=BATCH, threads=1))
    print_table(records, f"per-step time, MLP {N_IN}-{HIDDEN}-{N_OUT}, batch {BATCH}, Adam, 1 thread, "
                         f"median of {args.blocks} blocks of {args.steps} steps")
    over = isolated("gpunet", layer_overheads, args.blocks, args.steps)
    print("\nlayer call over its bare kernel calls (forward + backward, one thread)")
    for r in over:
        print(f"{r['name']:<28} layer {r['layer_s'] * 1e6:7.1f} µs  kernel {r['kernel_s'] * 1e6:7.1f} µs  "
              f"overhead {r['overhead_us']:6.1f} µs")
    records += over
    write_json(records, args.json)
    return records


if __name__ == "__main__":
    main()
