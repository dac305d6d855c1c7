"""One epoch of ``gpunet.models.dropout_cnn(0.2)`` on MNIST at batch 64 (Adam, lr 1e-3): gpunet
against PyTorch (the same network), in the same run, with the same thread count.

    python benchmarks/cnn_epoch.py [--device cpu|gpu|both] [--json out.json] [--threads N]
                                   [--batches 40] [--rounds 7] [--full-epochs 0] [--pause 0.5]

Method (default): training steps are timed in blocks of ``--batches`` consecutive mini-batches of
a shuffled epoch, ``--rounds`` times after a warm-up block; the median block time per batch is
scaled to an epoch (ceil(60000 / 64) = 938 batches). On the CPU each library runs in a fresh
process of its own (see common.py: one process would make them share an OpenMP runtime); on the
GPU both run in one process, their blocks alternating so that both see the same load. A pause of
``--pause`` seconds before each block lets idle worker threads (OpenBLAS, OpenMP) go to sleep. With
``--full-epochs K`` whole epochs are timed instead (K of each; the median is reported).
The data sit on the device before timing; each step is the hand-written loop of DESIGN.md
(forward, loss, backward, optimizer step), the first layer's input gradient skipped in both.
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time


def _blas_threads_from_argv() -> None:
    """NumPy's OpenBLAS reads its thread count once, at import; without threadpoolctl it cannot
    be changed later, so ``--threads N`` is passed on through the environment before the import."""
    args = sys.argv[1:]
    for i, a in enumerate(args):
        n = None
        if a.startswith("--threads="):
            n = a.split("=", 1)[1]
        elif a == "--threads" and i + 1 < len(args):
            n = args[i + 1]
        if n:
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, n)


_blas_threads_from_argv()

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import isolated, numba_layer, parser, print_table, record, set_threads, write_json  # noqa: E402

import gpunet as gn  # noqa: E402

BATCH = 64
P_DROP = 0.2


def load():
    train = gn.data.mnist("train", flatten=False, fallback_to_sample=True)
    return train.x.astype(np.float32), train.y.astype(np.int64)


def torch_model(device):
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(P_DROP), nn.Linear(1600, 10)).to(device)


class GpunetRun:
    def __init__(self, x, y, device):
        gn.use(device)
        gn.seed(0)
        self.model = gn.models.dropout_cnn(P_DROP)
        self.model.need_input_grad = False
        self.opt = gn.optim.Adam(self.model, lr=1e-3)
        self.loss_fn = gn.losses.CrossEntropy(check_labels=False)
        self.x, self.y = gn.to_device(x), gn.to_device(y)
        self.device = device
        self.it = iter(())

    def batches(self, k):
        out = []
        while len(out) < k:
            nxt = next(self.it, None)
            if nxt is None:
                self.it = gn.data.batches(self.x, self.y, BATCH, shuffle=True)
                continue
            out.append(nxt)
        return out

    def step(self, xb, yb):
        self.model.train()
        self.loss_fn(self.model(xb), yb)
        self.model.backward(self.loss_fn.backward())
        self.opt.step()

    def sync(self):
        if self.device == "gpu":
            import cupy

            cupy.cuda.Device().synchronize()


class TorchRun:
    def __init__(self, x, y, device):
        import torch

        self.torch = torch
        torch.manual_seed(0)
        self.dev = "cuda" if device == "gpu" else "cpu"
        self.model = torch_model(self.dev)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.x, self.y = torch.from_numpy(x).to(self.dev), torch.from_numpy(y).to(self.dev)
        self.perm, self.pos = None, 0
        self.gen = torch.Generator(device="cpu").manual_seed(0)

    def batches(self, k):
        out = []
        n = len(self.x)
        while len(out) < k:
            if self.perm is None or self.pos >= n:
                self.perm, self.pos = self.torch.randperm(n, generator=self.gen).to(self.dev), 0
            idx = self.perm[self.pos:self.pos + BATCH]
            self.pos += BATCH
            out.append((self.x[idx], self.y[idx]))
        return out

    def step(self, xb, yb):
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        self.loss_fn(self.model(xb), yb).backward()
        self.opt.step()

    def sync(self):
        if self.dev == "cuda":
            self.torch.cuda.synchronize()


def time_block(run, k, pause=0.0):
    data = run.batches(k)  # drawn before the clock starts
    run.sync()
    time.sleep(pause)
    t0 = time.perf_counter()
    for xb, yb in data:
        run.step(xb, yb)
    run.sync()
    return time.perf_counter() - t0


RUNS = {"gpunet": GpunetRun, "torch": TorchRun}


def measure(libs, device, args, threads) -> dict:
    """Epoch-time estimates for the libraries in ``libs``, their blocks alternating."""
    set_threads(threads)
    x, y = load()
    runs = {k: RUNS[k](x, y, device) for k in libs}
    per_epoch = math.ceil(len(x) / BATCH)
    times = {k: [] for k in runs}
    if args.full_epochs:
        for r in runs.values():
            time_block(r, per_epoch)  # warm-up epoch
        for _ in range(args.full_epochs):
            for name, r in runs.items():
                times[name].append(time_block(r, per_epoch, args.pause))
        est = {k: statistics.median(v) for k, v in times.items()}
        method = f"median of {args.full_epochs} full epochs"
    else:
        for r in runs.values():
            time_block(r, max(5, args.batches // 4))  # warm-up: compilation, allocator, caches
        for _ in range(args.rounds):
            for name, r in runs.items():
                times[name].append(time_block(r, args.batches, args.pause) / args.batches)
        est = {k: statistics.median(v) * per_epoch for k, v in times.items()}
        method = f"median of {args.rounds} blocks of {args.batches} batches, scaled to {per_epoch} batches"
    return {**est, "method": method, "per_epoch": per_epoch, "images": len(x), "numba_layer": numba_layer()}


def bench(device, args, threads) -> dict:
    """On the CPU each library in a fresh process of its own (see common.isolated); on the GPU
    both in this process, their blocks alternating."""
    if device == "cpu":
        m = isolated("gpunet", measure, ["gpunet"], device, args, threads)
        m["torch"] = isolated("torch", measure, ["torch"], device, args, threads)["torch"]
    else:
        m = measure(["gpunet", "torch"], device, args, threads)
    return record("cnn_epoch", device, m["gpunet"], m["torch"], threads=threads, batches_per_epoch=m["per_epoch"],
                  train_images=m["images"], method=m["method"], numba_layer=m["numba_layer"])


def main():
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=40, help="batches per timed block")
    p.add_argument("--rounds", type=int, default=7, help="timed blocks per library")
    p.add_argument("--full-epochs", type=int, default=0, help="time this many whole epochs instead")
    p.add_argument("--pause", type=float, default=0.5, help="seconds of idle before each timed block")
    args = p.parse_args()
    threads = set_threads(args.threads)
    devices = ["cpu", "gpu"] if args.device == "both" else [args.device]
    records = []
    for device in devices:
        if device == "gpu" and not gn.gpu_available():
            print("gpu: no usable GPU, skipped", file=sys.stderr)
            continue
        records.append(bench(device, args, threads))
    gn.use("cpu")
    title = f"one epoch of dropout_cnn({P_DROP}) on MNIST, batch {BATCH} ({threads} CPU threads)"
    print_table(records, title)
    for r in records:
        print(f"{r['device']}: gpunet {r['gpunet_s']:.2f} s/epoch, torch {r['torch_s']:.2f} s/epoch, "
              f"ratio {r['ratio']:.2f} ({r['method']})")
    write_json(records, args.json)


if __name__ == "__main__":
    main()
