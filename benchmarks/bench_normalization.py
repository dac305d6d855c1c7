"""Batch norm, layer norm and dropout against PyTorch, same machine, same run, same thread count (medians).

CPU: BatchNorm1d forward+backward on (1024, 4096) float32 against torch.nn.BatchNorm1d,
LayerNorm(1024) on (4096, 1024) against torch.nn.LayerNorm (forward alone, and forward+backward
with the parameter gradients), and Dropout(p=0.5) forward+backward on (1024, 4096) against
torch.nn.functional.dropout (autograd).
GPU: batch norm on (8192, 8192) and (256, 64, 56, 56) against torch.nn.BatchNorm1d/2d (cuDNN),
LayerNorm(4096) on (16384, 4096), dropout on (8192, 8192) against torch.nn.functional.dropout,
with achieved GB/s: the bytes a minimal implementation moves (the normalizations: x read and y
written forward, dy and x read and dx written backward, 5 passes of the tensor; dropout: 4
passes plus the 1-bit mask twice) over the time, next to a measured device-to-device copy
(read + write) of the same tensor.

    python benchmarks/bench_normalization.py [--device cpu|gpu|both] [--threads N] [--json out.json]
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (gpu_time, isolated, median_time, numba_layer, parser, print_table, record,  # noqa: E402
                    set_threads, torch_gpu_time, write_json)

import gpunet as gn  # noqa: E402

CPU_SHAPE = (1024, 4096)
CPU_LN_SHAPE = (4096, 1024)
GPU_LN_SHAPE = (16384, 4096)
GPU_BN_SHAPES = [("batchnorm1d", (8192, 8192)), ("batchnorm2d", (256, 64, 56, 56))]
GPU_DROPOUT_SHAPE = (8192, 8192)


def _shape_text(shape) -> str:
    return "x".join(map(str, shape))


def _bn_pair(kind: str, C: int):
    import torch

    ours = gn.BatchNorm1d(C) if kind == "batchnorm1d" else gn.BatchNorm2d(C)
    theirs = torch.nn.BatchNorm1d(C) if kind == "batchnorm1d" else torch.nn.BatchNorm2d(C)
    return ours, theirs


def _cpu_inputs(shape=CPU_SHAPE):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(shape).astype(np.float32),
            rng.standard_normal(shape).astype(np.float32))


def gn_cpu_times(threads: int) -> dict:
    """gpunet's batch norm and dropout forward+backward on the CPU (median seconds)."""
    set_threads(threads)
    gn.use("cpu")
    x, dy = _cpu_inputs()
    bn = gn.BatchNorm1d(CPU_SHAPE[1])
    drop = gn.Dropout(0.5)

    def bn_step():
        bn(x)
        bn.backward(dy)

    def drop_step():
        drop(x)
        drop.backward(dy)

    xl, dyl = _cpu_inputs(CPU_LN_SHAPE)
    ln = gn.LayerNorm(CPU_LN_SHAPE[1])

    def ln_step():
        ln(xl)
        ln.backward(dyl)

    return {"batchnorm1d": median_time(bn_step, repeat=30), "dropout": median_time(drop_step, repeat=30),
            "layernorm": median_time(ln_step, repeat=30), "layernorm_fwd": median_time(lambda: ln(xl), repeat=30),
            "numba_layer": numba_layer()}


def torch_cpu_times(threads: int) -> dict:
    """The same with torch.nn.BatchNorm1d and torch.nn.functional.dropout through autograd."""
    import torch

    set_threads(threads)
    x, dy = _cpu_inputs()
    xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)
    tbn = torch.nn.BatchNorm1d(CPU_SHAPE[1])

    def bn_step():
        xt.grad = None
        tbn(xt).backward(dyt)

    def drop_step():
        xt.grad = None
        torch.nn.functional.dropout(xt, 0.5, training=True).backward(dyt)

    xl, dyl = _cpu_inputs(CPU_LN_SHAPE)
    xlt, dylt = torch.from_numpy(xl).requires_grad_(True), torch.from_numpy(dyl)
    tln = torch.nn.LayerNorm(CPU_LN_SHAPE[1])

    def ln_step():
        xlt.grad = None
        tln.zero_grad()  # the gradients written, not accumulated: as gpunet's step
        tln(xlt).backward(dylt)

    def ln_fwd():
        with torch.no_grad():
            tln(xlt)

    return {"batchnorm1d": median_time(bn_step, repeat=30), "dropout": median_time(drop_step, repeat=10, warmup=2),
            "layernorm": median_time(ln_step, repeat=30), "layernorm_fwd": median_time(ln_fwd, repeat=30)}


def cpu_records(threads: int) -> list[dict]:
    """Each library in a fresh process of its own (see common.isolated)."""
    ours, theirs = isolated("gpunet", gn_cpu_times, threads), isolated("torch", torch_cpu_times, threads)
    extra = {"shape": _shape_text(CPU_SHAPE), "threads": threads, "numba_layer": ours["numba_layer"]}
    return [record("batchnorm1d_fwd_bwd", "cpu", ours["batchnorm1d"], theirs["batchnorm1d"], **extra),
            record("dropout_fwd_bwd", "cpu", ours["dropout"], theirs["dropout"], p=0.5, **extra),
            record("layernorm_fwd_bwd", "cpu", ours["layernorm"], theirs["layernorm"],
                   **{**extra, "shape": _shape_text(CPU_LN_SHAPE)}),
            record("layernorm_fwd", "cpu", ours["layernorm_fwd"], theirs["layernorm_fwd"],
                   **{**extra, "shape": _shape_text(CPU_LN_SHAPE)})]


def _copy_gbps(nbytes: int, a) -> float:
    import cupy

    out = cupy.empty_like(a)
    t = gpu_time(lambda: cupy.copyto(out, a), repeat=30)
    return 2 * nbytes / t / 1e9


def gpu_records() -> list[dict]:
    import cupy
    import torch

    previous = gn.backend.active()
    gn.use("gpu")
    records = []
    try:
        for kind, shape in GPU_BN_SHAPES:
            rng = np.random.default_rng(1)
            x_h = rng.standard_normal(shape, dtype=np.float32)
            dy_h = rng.standard_normal(shape, dtype=np.float32)
            x, dy = cupy.asarray(x_h), cupy.asarray(dy_h)
            xt = torch.from_numpy(x_h).cuda().requires_grad_(True)
            dyt = torch.from_numpy(dy_h).cuda()
            bn, tbn = _bn_pair(kind, shape[1])
            tbn = tbn.cuda()
            nbytes = x.nbytes
            copy = _copy_gbps(nbytes, x)

            def ours_fwd():
                bn(x)

            def ours_step():
                bn(x)
                bn.backward(dy)

            def torch_fwd():
                with torch.no_grad():
                    tbn(xt)

            def torch_step():
                xt.grad = None
                tbn(xt).backward(dyt)

            t_ours, t_torch = gpu_time(ours_step), torch_gpu_time(torch_step)
            records.append(record(f"{kind}_fwd_bwd_{_shape_text(shape)}", "gpu", t_ours, t_torch,
                                  GBps=5 * nbytes / t_ours / 1e9, torch_GBps=5 * nbytes / t_torch / 1e9,
                                  copy_GBps=copy))
            t_ours, t_torch = gpu_time(ours_fwd), torch_gpu_time(torch_fwd)
            records.append(record(f"{kind}_fwd_{_shape_text(shape)}", "gpu", t_ours, t_torch,
                                  GBps=2 * nbytes / t_ours / 1e9, torch_GBps=2 * nbytes / t_torch / 1e9,
                                  copy_GBps=copy))
            del x, dy, xt, dyt

        rng = np.random.default_rng(3)
        x_h = rng.standard_normal(GPU_LN_SHAPE, dtype=np.float32)
        dy_h = rng.standard_normal(GPU_LN_SHAPE, dtype=np.float32)
        x, dy = cupy.asarray(x_h), cupy.asarray(dy_h)
        xt = torch.from_numpy(x_h).cuda().requires_grad_(True)
        dyt = torch.from_numpy(dy_h).cuda()
        ln, tln = gn.LayerNorm(GPU_LN_SHAPE[1]), torch.nn.LayerNorm(GPU_LN_SHAPE[1]).cuda()

        def ours_ln():
            ln(x)
            ln.backward(dy)

        def torch_ln():
            xt.grad = None
            tln.zero_grad()
            tln(xt).backward(dyt)

        nbytes = x.nbytes
        t_ours, t_torch = gpu_time(ours_ln), torch_gpu_time(torch_ln)
        records.append(record(f"layernorm_fwd_bwd_{_shape_text(GPU_LN_SHAPE)}", "gpu", t_ours, t_torch,
                              GBps=5 * nbytes / t_ours / 1e9, torch_GBps=5 * nbytes / t_torch / 1e9,
                              copy_GBps=_copy_gbps(nbytes, x)))
        del x, dy, xt, dyt

        shape = GPU_DROPOUT_SHAPE
        x_h = np.random.default_rng(2).standard_normal(shape, dtype=np.float32)
        x, dy = cupy.asarray(x_h), cupy.asarray(x_h[::-1].copy())
        xt = torch.from_numpy(x_h).cuda().requires_grad_(True)
        dyt = torch.from_numpy(x_h[::-1].copy()).cuda()
        drop = gn.Dropout(0.5)

        def ours_drop():
            drop(x)
            drop.backward(dy)

        def torch_drop():
            xt.grad = None
            torch.nn.functional.dropout(xt, 0.5, training=True).backward(dyt)

        nbytes = x.nbytes
        moved = 4 * nbytes + 2 * nbytes / 32
        t_ours, t_torch = gpu_time(ours_drop), torch_gpu_time(torch_drop)
        records.append(record(f"dropout_fwd_bwd_{_shape_text(shape)}", "gpu", t_ours, t_torch, p=0.5,
                              GBps=moved / t_ours / 1e9, torch_GBps=moved / t_torch / 1e9,
                              copy_GBps=_copy_gbps(nbytes, x)))
    finally:
        gn.use(previous)
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
    print_table(records, f"batch norm, layer norm and dropout vs PyTorch ({threads} CPU threads; medians)")
    write_json(records, args.json)


if __name__ == "__main__":
    main()
