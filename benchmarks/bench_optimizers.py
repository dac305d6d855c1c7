"""Fused optimizer step against PyTorch: Adam with global-norm clipping over one flat arena.

CPU (10M parameters; torch gets them as 20 tensors of 500K): gpunet ``Adam(clip_norm=1.0)``
(a gradient-statistics pass and one fused update pass) against ``clip_grad_norm_`` followed by
``torch.optim.Adam`` with ``fused=True``, its default (foreach) and ``foreach=False``.
GPU (100M parameters; 20 tensors of 5M for torch): the same against torch's fused Adam, with
the achieved bandwidth at 32 bytes per parameter (4 to read the gradient for the norm, 16 read
and 12 written by the update) and, for scale, a device-to-device copy of a 1 GB buffer (read +
write counted): the update's target is 85% of the copy's bandwidth. Also the weight EMA
(8 bytes read + 4 written per parameter) against torch's ``_foreach_lerp_``.

    python benchmarks/bench_optimizers.py [--device cpu|gpu|both] [--threads N] [--json out.json]
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (gpu_time, isolated, median_time, numba_layer, parser, print_table, record,  # noqa: E402
                    set_threads, torch_gpu_time, write_json)

import gpunet as gn  # noqa: E402

N_CPU = 10_000_000
N_GPU = 100_000_000
TENSORS = 20


class _Flat(gn.Layer):
    """A model that is one flat weight vector (the arena without layers around it)."""

    def __init__(self, values):
        super().__init__()
        self.add_parameter("weight", values)


def _gn_adam(n, device, rng):
    xp = np if device == "cpu" else __import__("cupy")
    model = _Flat(xp.asarray(rng.standard_normal(n, dtype=np.float32)))
    model.arena.grads[...] = xp.asarray(rng.standard_normal(n, dtype=np.float32))
    return model, gn.optim.Adam(model, lr=1e-3, clip_norm=1.0)


def _torch_adam(n, device, rng, **kwargs):
    import torch

    chunk = n // TENSORS
    params = [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(chunk, dtype=np.float32)).to(device))
              for _ in range(TENSORS)]
    for p in params:
        p.grad = torch.from_numpy(rng.standard_normal(chunk, dtype=np.float32)).to(device)
    opt = torch.optim.Adam(params, lr=1e-3, **kwargs)

    def step():
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return step


def gn_cpu_time(threads: int) -> dict:
    """gpunet's Adam + clip step on 10M parameters on the CPU (median of 21 after 3 warm-ups)."""
    set_threads(threads)
    _, opt = _gn_adam(N_CPU, "cpu", np.random.default_rng(0))
    return {"adam_clip": median_time(opt.step, repeat=21, warmup=3), "numba_layer": numba_layer()}


def torch_cpu_times(threads: int) -> dict:
    """clip_grad_norm_ + torch.optim.Adam, fused, default (foreach) and for-loop, on the CPU."""
    set_threads(threads)
    rng = np.random.default_rng(0)
    return {name: median_time(_torch_adam(N_CPU, "cpu", rng, **kwargs), repeat=21, warmup=3)
            for name, kwargs in (("fused", {"fused": True}), ("default", {}), ("forloop", {"foreach": False}))}


def cpu_records(threads: int) -> list[dict]:
    """Adam + clip on 10M parameters against torch's fused, default and for-loop Adam (CPU),
    each library in a fresh process of its own (see common.isolated)."""
    ours, theirs = isolated("gpunet", gn_cpu_time, threads), isolated("torch", torch_cpu_times, threads)
    gn_s = ours["adam_clip"]
    return [record(f"adam_clip_10M_vs_torch_{name}", "cpu", gn_s, torch_s, threads=threads,
                   gpunet_gbps=32 * N_CPU / gn_s / 1e9, numba_layer=ours["numba_layer"])
            for name, torch_s in theirs.items()]


def _copy_gbps() -> float:
    import cupy

    src = cupy.ones(1 << 28, dtype=cupy.float32)  # 1 GiB
    dst = cupy.empty_like(src)
    t = gpu_time(lambda: cupy.copyto(dst, src), repeat=20, warmup=3)
    return 2 * src.nbytes / t / 1e9


def gpu_records() -> list[dict]:
    """Adam + clip and EMA on 100M parameters on the GPU against torch, with GB/s."""
    import cupy
    import torch

    rng = np.random.default_rng(0)
    copy_gbps = _copy_gbps()
    model, opt = _gn_adam(N_GPU, "gpu", rng)
    gn_s = gpu_time(opt.step, repeat=30, warmup=5)
    torch_s = torch_gpu_time(_torch_adam(N_GPU, "cuda", rng, fused=True), repeat=30, warmup=5)
    gbps = 32 * N_GPU / gn_s / 1e9
    records = [record("adam_clip_100M_vs_torch_fused", "gpu", gn_s, torch_s, gpunet_gbps=gbps,
                      copy_gbps=copy_gbps, fraction_of_copy=gbps / copy_gbps)]
    torch.cuda.empty_cache()

    ema = model.arena.params.copy()
    gn_s = gpu_time(lambda: gn.optim.ema_update(ema, model.arena.params, 0.999), repeat=30, warmup=5)
    del model, opt
    cupy.get_default_memory_pool().free_all_blocks()
    chunk = N_GPU // TENSORS
    w = [torch.randn(chunk, device="cuda") for _ in range(TENSORS)]
    e = [x.clone() for x in w]
    torch_s = torch_gpu_time(lambda: torch._foreach_lerp_(e, w, 1 - 0.999), repeat=30, warmup=5)
    gbps = 12 * N_GPU / gn_s / 1e9
    records.append(record("ema_100M_vs_torch_foreach_lerp", "gpu", gn_s, torch_s, gpunet_gbps=gbps,
                          copy_gbps=copy_gbps, fraction_of_copy=gbps / copy_gbps))
    return records


def main(argv=None):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    threads = set_threads(args.threads)
    records = []
    if args.device in ("cpu", "both"):
        records += cpu_records(threads)
    if args.device in ("gpu", "both"):
        if gn.gpu_available():
            records += gpu_records()
        else:
            print("no usable GPU: skipping the GPU rows")
    print_table(records, f"fused optimizer step vs PyTorch ({threads} CPU threads; medians)")
    write_json(records, args.json)


if __name__ == "__main__":
    main()
