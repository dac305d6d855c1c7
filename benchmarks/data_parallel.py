"""Data-parallel training: what splitting the work over processes costs and gains.

1. The main job's MLP epoch (784-512-256-10 with BatchNorm and Dropout(0.2), Adam with
   clip_norm=1.0, global batch 128, 55,000 MNIST images, through the Trainer) on 1 process × T
   threads against P processes × T/P threads on the same T cores (``mpiexec -n P``); median of 3
   epochs after a warm-up epoch. Scaling efficiency = t(1 process) / t(P processes): 1.0 means the
   processes use the cores as well as one process's threads do.
2. All-reduce of a 10M-float32 gradient arena (``Communicator.allreduce_gradients``) against MPI's
   own ``Allreduce`` on a plain NumPy buffer of the same size, on P processes; median of 15.
3. On a GPU (``--device gpu``): the NCCL path with one rank and the host-staged MPI path for a
   100M-float32 arena, against a device-to-device copy of the same size.

    python benchmarks/data_parallel.py [--processes 2] [--json out.json] [--device cpu|gpu]

The script starts its own ``mpiexec -n P`` (``gpunet.distributed.find_mpiexec``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# not benchmarks/common.py here: it imports PyTorch, whose OpenMP runtime, loaded first, can move
# gpunet's Numba kernels to the slower workqueue layer (gpunet/cpu_threads.py) in every rank

ARENA = 10_000_000
GPU_ARENA = 100_000_000


def mpiexec() -> str:
    from gpunet.distributed import find_mpiexec

    found = find_mpiexec()
    if found is None:
        sys.exit("data_parallel: no mpiexec found; pip install mpi4py mpich")
    return found


# ----------------------------------------------------------------------------- worker side
def _epoch_times(epochs: int, subset: int):
    import gpunet as gn

    sys.path.insert(0, str(HERE.parent / "examples"))
    from train_mnist import build_model

    comm = gn.distributed.init()
    gn.seed(0)
    train = gn.data.mnist("train", fallback_to_sample=True)
    train = train[: min(len(train), subset)] if subset else train[: len(train) - len(train) // 12]
    model = build_model(0.2)
    trainer = gn.Trainer(model, gn.losses.CrossEntropy(), gn.optim.Adam(model, lr=1e-3, clip_norm=1.0),
                         metrics=["accuracy"], distributed=comm)
    h = trainer.fit(train, epochs=epochs + 1, batch_size=128, verbose=0)
    grad_floats = int(model.arena.trainable(model.arena.grads).size)
    return comm, [float(t) for t in h["time"][1:]], len(train), grad_floats


def _allreduce_times(repeat: int):
    import gpunet as gn
    from mpi4py import MPI

    comm = gn.distributed.init()
    model = gn.Sequential(gn.Linear(3162, 3162, bias=False))  # 9,998,244 weights: a 10M arena
    model.build((3162,))
    grads = model.arena.grads
    grads[...] = 1.0
    plain = np.ones(grads.size, dtype=np.float32)
    t_gn, t_mpi = [], []
    for i in range(repeat + 2):  # the two libraries alternate; 2 warm-ups
        comm.barrier()
        t0 = time.perf_counter()
        comm.allreduce_gradients(model)
        t1 = time.perf_counter()
        comm.barrier()
        t2 = time.perf_counter()
        comm.mpi.Allreduce(MPI.IN_PLACE, plain, op=MPI.SUM)
        t3 = time.perf_counter()
        if i >= 2:
            t_gn.append(t1 - t0)
            t_mpi.append(t3 - t2)
    gn_s = max(comm.allgather_object(statistics.median(t_gn)))  # the slowest rank's median
    mpi_s = max(comm.allgather_object(statistics.median(t_mpi)))
    return comm, gn_s, mpi_s, grads.size


def worker(args) -> None:
    out = {}
    if args.part == "epoch":
        comm, times, n, grad_floats = _epoch_times(args.epochs, args.subset)
        out = {"epoch_s": statistics.median(times), "times": times, "examples": n, "grad_floats": grad_floats}
    else:
        comm, gn_s, mpi_s, size = _allreduce_times(args.repeat)
        out = {"gpunet_s": gn_s, "mpi_s": mpi_s, "floats": size}
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps(out))


# ----------------------------------------------------------------------------- driver side
def launch(part: str, processes: int, threads: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), GPUNET_BACKEND="cpu")
        cmd = [sys.executable, __file__, "--worker", part, "--out", out, "--epochs", str(args.epochs),
               "--subset", str(args.subset), "--repeat", str(args.repeat)]
        if processes > 1:
            cmd = [mpiexec(), "-n", str(processes)] + cmd
        subprocess.run(cmd, env=env, check=True)
        return json.loads(Path(out).read_text())


def gpu_records() -> list[dict]:
    """NCCL with one rank and the host-staged path, 100M floats, against a device copy."""
    import cupy

    sys.path.insert(0, str(HERE))
    from common import gpu_time

    from gpunet.distributed.comm import MPICommunicator, NCCLCommunicator

    a = cupy.ones(GPU_ARENA, dtype=cupy.float32)
    b = cupy.empty_like(a)
    copy_s = gpu_time(lambda: b.__setitem__(Ellipsis, a), repeat=20)
    recs = []
    for name, comm in (("nccl_1_rank", NCCLCommunicator()), ("host_staged_1_rank", MPICommunicator())):
        t = gpu_time(lambda: comm._allreduce_sum(a), repeat=10, warmup=2)
        recs.append({"name": f"allreduce_{name}", "device": "gpu", "gpunet_s": t, "baseline": "device copy",
                     "baseline_s": copy_s, "ratio": t / copy_s, "floats": GPU_ARENA})
    return recs


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", metavar="PATH", help="write the records as a JSON list")
    p.add_argument("--device", choices=["cpu", "gpu", "both"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="the cores to use (default: all this process may use)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--subset", type=int, default=0, help="train on the first N images (0: the main job's 55,000)")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--worker", choices=["epoch", "allreduce"], dest="part")
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.part:
        return worker(args)
    cores = args.threads or len(os.sched_getaffinity(0))
    P = args.processes
    recs = []
    if args.device in ("cpu", "both"):
        one = launch("epoch", 1, cores, args)
        many = launch("epoch", P, max(1, cores // P), args)
        recs.append({"name": "mlp_bn_dropout_epoch", "device": "cpu", "gpunet_s": many["epoch_s"],
                     "baseline": f"1 process x {cores} threads", "baseline_s": one["epoch_s"],
                     "ratio": many["epoch_s"] / one["epoch_s"], "efficiency": one["epoch_s"] / many["epoch_s"],
                     "processes": P, "threads_per_process": max(1, cores // P), "examples": one["examples"],
                     "steps": -(-one["examples"] // 128), "grad_floats": one["grad_floats"]})
        red = launch("allreduce", P, max(1, cores // P), args)
        recs.append({"name": "allreduce_10M_float32", "device": "cpu", "gpunet_s": red["gpunet_s"],
                     "baseline": "MPI Allreduce, NumPy buffer", "baseline_s": red["mpi_s"],
                     "ratio": red["gpunet_s"] / red["mpi_s"], "processes": P, "floats": red["floats"],
                     "GBps": red["floats"] * 4 / red["gpunet_s"] / 1e9})
    if args.device in ("gpu", "both"):
        recs += gpu_records()
    print(f"{'name':<28} {'dev':<4} {'gpunet':>10} {'baseline':>10} {'ratio':>6}  baseline, extra")
    for r in recs:
        extra = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                          if k not in ("name", "device", "gpunet_s", "baseline_s", "ratio", "baseline"))
        print(f"{r['name']:<28} {r['device']:<4} {r['gpunet_s'] * 1e3:>8.2f}ms {r['baseline_s'] * 1e3:>8.2f}ms "
              f"{r['ratio']:>6.3f}  {r['baseline']}; {extra}")
    if args.json:
        Path(args.json).write_text(json.dumps(recs, indent=2))
    return recs


if __name__ == "__main__":
    main()
