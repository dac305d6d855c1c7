"""One epoch of the example MLP (784-512-256-10, ReLU, He init) on MNIST at batch 128:
gpunet against PyTorch on the same machine, in the same run, with the same thread count.
Median of 3 epochs after one warm-up epoch. On the CPU each library runs in a fresh process of
its own (see common.py: one process would make them share an OpenMP runtime).

    python benchmarks/mlp_epoch.py [--device cpu|gpu|both] [--json out.json] [--optimizer adam|sgd]

Variants: ``mlp_epoch`` (plain MLP, hand-written loop in both libraries), ``mlp_bn_dropout_epoch``
(BatchNorm1d and Dropout(0.2) after each hidden layer, Adam with clip_norm=1.0), and, when the
Trainer exists, ``mlp_bn_dropout_epoch_trainer`` (the same model through gpunet.Trainer, compared
with PyTorch and, in ``trainer_over_hand``, with gpunet's own hand-written loop, their epochs
alternating). On the CPU, rows ending ``_torch_first`` time gpunet's hand-written loop in a process
that imported torch before gpunet (gpunet/cpu_threads.py: which threading layer Numba then runs on).
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import isolated, numba_layer, parser, print_table, record, set_threads, write_json  # noqa: E402,E501

import gpunet as gn  # noqa: E402

BATCH = 128


def load(subset=0):
    train = gn.data.mnist("train", fallback_to_sample=True)
    if subset:
        train = train.subset(subset)
    return train.x.astype(np.float32), train.y.astype(np.int64)


def gn_model(bn_dropout: bool):
    def block(n_in, n_out):
        layers = [gn.Linear(n_in, n_out, init="he_normal")]
        if bn_dropout:
            layers.append(gn.BatchNorm1d(n_out))
        layers.append(gn.ReLU())
        if bn_dropout:
            layers.append(gn.Dropout(0.2))
        return layers

    return gn.Sequential(*block(784, 512), *block(512, 256), gn.Linear(256, 10, init="glorot_normal"))


def torch_model(bn_dropout: bool, device):
    import torch.nn as nn

    def block(n_in, n_out):
        layers = [nn.Linear(n_in, n_out)]
        if bn_dropout:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(nn.ReLU())
        if bn_dropout:
            layers.append(nn.Dropout(0.2))
        return layers

    return nn.Sequential(*block(784, 512), *block(512, 256), nn.Linear(256, 10)).to(device)


def gn_optimizer(model, name, clip):
    if name == "adam" and hasattr(gn.optim, "Adam"):
        return gn.optim.Adam(model, lr=1e-3, clip_norm=clip)
    return gn.optim.SGD(model, lr=0.05)


def gn_epoch(model, opt, x, y, sync):
    loss_fn = gn.losses.CrossEntropy(check_labels=False)
    model.train()
    model.need_input_grad = False  # as in PyTorch, no gradient for the input images
    last = None
    for xb, yb in gn.data.batches(x, y, BATCH, shuffle=True):
        logits = model(xb)
        last = loss_fn(logits, yb)
        model.backward(loss_fn.backward())
        opt.step()
    sync()
    return float(last)


def torch_epoch(model, opt, x, y, clip, sync):
    import torch
    import torch.nn.functional as F

    model.train()
    n = x.shape[0]
    perm = torch.randperm(n, device=x.device)
    last = None
    for i in range(0, n, BATCH):
        idx = perm[i : i + BATCH]
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        last = loss
    sync()
    return float(last.detach())


def median_epochs(runs: dict, epochs=3) -> dict:
    """Median epoch time of each callable in ``runs``: one warm-up epoch each (compilation,
    caches, allocator), then ``epochs`` rounds in which they take turns, so that all see the
    same machine load."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(epochs):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _sync(device):
    if device != "gpu":
        return lambda: None
    import cupy

    return cupy.cuda.Device().synchronize


def gn_side(device, optimizer, epochs, bn_dropout, clip, threads, subset=0):
    """gpunet's epoch times for one variant: the hand-written loop and, with batch norm and
    dropout, the Trainer; also Numba's threading layer and the optimizer's name."""
    set_threads(threads)
    x, y = load(subset)
    gn.use(device)
    sync = _sync(device)
    gx, gy = gn.to_device(x), gn.to_device(y)
    gn.seed(0)
    model = gn_model(bn_dropout)
    model.to(device)
    opt = gn_optimizer(model, optimizer, clip)
    runs = {"hand_s": lambda: gn_epoch(model, opt, gx, gy, sync)}
    if bn_dropout:
        trainer = gn.Trainer(model, gn.losses.CrossEntropy(), opt, metrics=["accuracy"], callbacks=[])

        def fit_one():
            trainer.fit((gx, gy), epochs=1, batch_size=BATCH, verbose=0)
            sync()

        runs["trainer_s"] = fit_one  # epochs alternate with the hand loop's
    return {**median_epochs(runs, epochs), "optimizer": type(opt).__name__, "numba_layer": numba_layer(),
            "images": len(x)}


def torch_side(device, optimizer, epochs, bn_dropout, clip, threads, subset=0):
    """PyTorch's epoch time for one variant (the same model, data and hand-written loop)."""
    import torch

    set_threads(threads)
    x, y = load(subset)
    tdev = "cuda" if device == "gpu" else "cpu"
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    tx, ty = torch.from_numpy(x).to(tdev), torch.from_numpy(y).to(tdev)
    torch.manual_seed(0)
    model = torch_model(bn_dropout, tdev)
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.05))
    return median_epochs({"torch": lambda: torch_epoch(model, opt, tx, ty, clip, sync)}, epochs)["torch"]


def bench(device, optimizer, epochs, variants, threads, subset=0):
    """On the CPU each side runs in a process of its own (see common.isolated); on the GPU both
    run here."""
    records = []
    for name, bn_dropout, clip in variants:
        args = (device, optimizer, epochs, bn_dropout, clip, threads, subset)
        if device == "cpu":
            g, t_s = isolated("gpunet", gn_side, *args), isolated("torch", torch_side, *args)
        else:
            g, t_s = gn_side(*args), torch_side(*args)
        records.append(record(name, device, g["hand_s"], t_s, batches=-(-g["images"] // BATCH),
                              optimizer=g["optimizer"], numba_layer=g["numba_layer"]))
        if "trainer_s" in g:
            records.append(record(name + "_trainer", device, g["trainer_s"], t_s, hand_loop_s=g["hand_s"],
                                  trainer_over_hand=g["trainer_s"] / g["hand_s"]))
        if device == "cpu":  # gpunet in a process that imported torch first, as a script using both does
            f = isolated("torch", gn_side, *args)
            records.append(record(name + "_torch_first", device, f["hand_s"], t_s, numba_layer=f["numba_layer"]))
    return records


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (median); one warm-up epoch first")
    p.add_argument("--subset", type=int, default=0, help="use the first N training images (0: all)")
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    devices = ["cpu", "gpu"] if args.device == "both" else [args.device]
    variants = [("mlp_epoch", False, None), ("mlp_bn_dropout_epoch", True, 1.0)]
    records = []
    for device in devices:
        if device == "gpu" and not gn.gpu_available():
            print("no usable GPU: skipping the GPU rows")
            continue
        records += bench(device, args.optimizer, args.epochs, variants, threads, args.subset)
    print_table(records, f"MLP epoch on MNIST, batch {BATCH}, {threads} threads, median of {args.epochs}")
    write_json(records, args.json)


if __name__ == "__main__":
    main()
