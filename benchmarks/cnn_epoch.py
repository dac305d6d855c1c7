"""One epoch of ``gpunet.models.dropout_cnn(0.2)`` (record "cnn_epoch") and of
``gpunet.models.resnet_small()`` (record "resnet_small_epoch") on MNIST at batch 64 (Adam, lr 1e-3):
gpunet against PyTorch (the same networks), in the same run, with the same thread count.

    python benchmarks/cnn_epoch.py [--device cpu|gpu|both] [--json out.json] [--threads N]
                                   [--models dropout_cnn,resnet_small] [--batches 40] [--rounds 7]
                                   [--full-epochs 0] [--pause 0.5]

Method (default): training steps are timed in blocks of ``--batches`` consecutive mini-batches of
a shuffled epoch, ``--rounds`` times after a warm-up block; the median block time per batch is
scaled to an epoch (ceil(60000 / 64) = 938 batches). On the CPU each library runs in a fresh
process of its own (see common.py: one process would make them share an OpenMP runtime), both
processes alive from the start; on the GPU both run in one process. Either way the two libraries'
blocks alternate, so that both see the same load and drift of the machine's speed. A pause of
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
from common import Worker, numba_layer, parser, print_table, record, set_threads, write_json  # noqa: E402

import gpunet as gn  # noqa: E402

BATCH = 64
P_DROP = 0.2


def load():
    train = gn.data.mnist("train", flatten=False, fallback_to_sample=True)
    return train.x.astype(np.float32), train.y.astype(np.int64)


def torch_model(device, name="dropout_cnn"):
    import torch.nn as nn

    if name == "resnet_small":
        return torch_resnet_small().to(device)
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(P_DROP), nn.Linear(1600, 10)).to(device)


def torch_resnet_small(widths=(16, 32, 64)):
    """gpunet.models.resnet_small in PyTorch: the same layers, shapes and order."""
    import torch.nn as nn

    def conv_bn(c_in, c_out, k, stride=1, relu=True):
        layers = [nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(c_out)]
        return layers + [nn.ReLU()] if relu else layers

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(c_in, c_out, 3, stride), *conv_bn(c_out, c_out, 3, relu=False))
            self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
                             if stride != 1 or c_in != c_out else nn.Identity())

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    layers, c = conv_bn(1, widths[0], 3), widths[0]
    for i, width in enumerate(widths):
        layers += [Block(c, width, 1 if i == 0 else 2), nn.ReLU()]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))


GPUNET_MODELS = {"dropout_cnn": lambda: gn.models.dropout_cnn(P_DROP), "resnet_small": lambda: gn.models.resnet_small()}
RECORDS = {"dropout_cnn": "cnn_epoch", "resnet_small": "resnet_small_epoch"}


class GpunetRun:
    def __init__(self, x, y, device, name="dropout_cnn"):
        gn.use(device)
        gn.seed(0)
        self.model = GPUNET_MODELS[name]()
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
    def __init__(self, x, y, device, name="dropout_cnn"):
        import torch

        self.torch = torch
        torch.manual_seed(0)
        self.dev = "cuda" if device == "gpu" else "cpu"
        self.model = torch_model(self.dev, name)
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
_PREPARED = {}  # library -> its run, in the process that times it


def prepare(lib, device, threads, name) -> dict:
    """Build ``lib``'s run of model ``name`` on MNIST in this process."""
    set_threads(threads)
    x, y = load()
    _PREPARED[lib] = RUNS[lib](x, y, device, name)
    return {"per_epoch": math.ceil(len(x) / BATCH), "images": len(x), "numba_layer": numba_layer()}


def block(lib, k, pause=0.0) -> float:
    """Seconds for ``k`` consecutive training steps of ``lib``'s prepared run."""
    return time_block(_PREPARED[lib], k, pause)


def measure(calls, device, args, threads, name="dropout_cnn") -> dict:
    """Epoch-time estimates of model ``name``; ``calls[lib](fn, *args)`` runs ``fn`` where ``lib``
    is timed. The libraries' blocks alternate."""
    info = {lib: call(prepare, lib, device, threads, name) for lib, call in calls.items()}
    per_epoch = info["gpunet"]["per_epoch"]
    times = {lib: [] for lib in calls}
    if args.full_epochs:
        for lib, call in calls.items():
            call(block, lib, per_epoch)  # warm-up epoch
        for _ in range(args.full_epochs):
            for lib, call in calls.items():
                times[lib].append(call(block, lib, per_epoch, args.pause))
        est = {k: statistics.median(v) for k, v in times.items()}
        method = f"median of {args.full_epochs} full epochs"
    else:
        for lib, call in calls.items():
            call(block, lib, max(5, args.batches // 4))  # warm-up: compilation, allocator, caches
        for _ in range(args.rounds):
            for lib, call in calls.items():
                times[lib].append(call(block, lib, args.batches, args.pause) / args.batches)
        est = {k: statistics.median(v) * per_epoch for k, v in times.items()}
        method = f"median of {args.rounds} blocks of {args.batches} batches, scaled to {per_epoch} batches"
    return {**est, "method": method, "per_epoch": per_epoch, "images": info["gpunet"]["images"],
            "numba_layer": info["gpunet"]["numba_layer"]}


def _here(fn, *args):
    return fn(*args)


def bench(device, args, threads, name="dropout_cnn") -> dict:
    """On the CPU each library in a fresh process of its own (see common.Worker), both alive, their
    blocks alternating; on the GPU both in this process, their blocks alternating."""
    if device == "cpu":
        with Worker("gpunet") as ours, Worker("torch") as theirs:
            m = measure({"gpunet": ours.call, "torch": theirs.call}, device, args, threads, name)
    else:
        m = measure({"gpunet": _here, "torch": _here}, device, args, threads, name)
    return record(RECORDS[name], device, m["gpunet"], m["torch"], threads=threads, batches_per_epoch=m["per_epoch"],
                  train_images=m["images"], method=m["method"], numba_layer=m["numba_layer"])


def main():
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=40, help="batches per timed block")
    p.add_argument("--rounds", type=int, default=7, help="timed blocks per library")
    p.add_argument("--full-epochs", type=int, default=0, help="time this many whole epochs instead")
    p.add_argument("--pause", type=float, default=0.5, help="seconds of idle before each timed block")
    p.add_argument("--models", default="dropout_cnn,resnet_small", help="comma-separated: " + ", ".join(RECORDS))
    args = p.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(RECORDS))
    if unknown or not names:
        p.error(f"--models: expected some of {', '.join(RECORDS)}, got {args.models!r}")
    threads = set_threads(args.threads)
    devices = ["cpu", "gpu"] if args.device == "both" else [args.device]
    records = []
    for device in devices:
        if device == "gpu" and not gn.gpu_available():
            print("gpu: no usable GPU, skipped", file=sys.stderr)
            continue
        records += [bench(device, args, threads, name) for name in names]
    gn.use("cpu")
    title = f"one epoch on MNIST, batch {BATCH} ({threads} CPU threads): cnn_epoch = dropout_cnn({P_DROP})"
    print_table(records, title)
    for r in records:
        print(f"{r['name']} {r['device']}: gpunet {r['gpunet_s']:.2f} s/epoch, torch {r['torch_s']:.2f} s/epoch, "
              f"ratio {r['ratio']:.2f} ({r['method']})")
    write_json(records, args.json)


if __name__ == "__main__":
    main()
