"""Data-parallel training across processes, GPUs and machines, on MPI and NCCL.

    comm = gn.distributed.init()                    # the MPI world; size 1 outside mpiexec
    trainer = gn.Trainer(model, loss, opt, distributed=comm)
    trainer.fit(train, epochs=10, batch_size=256)  # 256 is the global batch, split over the ranks

    mpiexec -n 4 python train.py                    # 4 processes on this machine
    mpiexec -hosts a,b -n 8 python train.py         # 8 processes on two machines

Each rank computes the gradient of its shard of every global batch; one all-reduce over the
model's flat gradient buffer (``arena.grads``) per step makes every rank's gradient the global
batch's mean, so every rank takes the same optimizer step. See docs/guides/distributed.md.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import traceback
from pathlib import Path

from .. import backend
from ..cpu_threads import limit_threads
from .comm import Communicator, MPICommunicator, NCCLCommunicator, SingleProcess, layout_signature
from .sharding import shard_bounds, shard_sizes

__all__ = ["init", "find_mpiexec", "Communicator", "SingleProcess", "MPICommunicator", "NCCLCommunicator", "shard_bounds",
           "shard_sizes", "layout_signature"]

# set by mpiexec (MPICH's Hydra, Open MPI, Intel MPI) and by PMI/PMIx launchers such as srun
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MPI_LOCALRANKID", "SLURM_PROCID")


def find_mpiexec() -> str | None:
    """The ``mpiexec`` to start a job with from Python: the one beside this interpreter (the
    ``mpich`` wheel installs it in the virtual environment), else the first on PATH; None if none."""
    here = Path(sys.executable).with_name("mpiexec")
    return str(here) if here.exists() else shutil.which("mpiexec")


def _launched_by_mpi() -> bool:
    return any(v in os.environ for v in _LAUNCHER_VARS)


def _abort_on_uncaught(comm) -> None:
    """An exception that ends one rank ends the job (MPI_Abort) instead of leaving the other
    ranks waiting in a collective; the traceback is printed first, with the rank."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        print(f"gpunet.distributed: rank {comm.rank} of {comm.size} failed; aborting the job", file=sys.stderr)
        traceback.print_exception(kind, value, tb)
        sys.stderr.flush()
        if previous not in (hook, sys.__excepthook__):
            previous(kind, value, tb)
        comm.abort(1)

    sys.excepthook = hook


def _share_cores(comm) -> dict:
    """Cap this rank's CPU thread pools at its share of the cores: the CPUs it may run on divided
    by the ranks of its machine that may run on any of them (all of them, unless the launcher
    bound each rank to cores of its own). Returns what ``limit_threads`` set."""
    mine = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        frozenset(range(os.cpu_count() or 1))
    host = socket.gethostname()
    sharing = sum(1 for h, cpus in comm.allgather_object((host, mine)) if h == host and cpus & mine)
    return limit_threads(max(1, len(mine) // max(1, sharing)))


def _one_rank_per_gpu(comm) -> bool:
    import cupy

    where = comm.allgather_object((socket.gethostname(), cupy.cuda.Device().id))
    return len(set(where)) == len(where)


def init(nccl: bool | None = None) -> Communicator:
    """The communicator of this process: ``SingleProcess`` when the script was not started by an
    MPI launcher (mpi4py is then not even imported), else the MPI world. On the GPU backend each rank
    first makes GPU ``local_rank`` (mod the node's GPU count) its device, and device buffers are
    reduced with NCCL when ``nccl`` is True or None (auto) and every rank has a GPU of its own;
    otherwise (``nccl=False``, or ranks sharing a GPU, which NCCL refuses) through host copies
    over MPI. With more than one rank, an uncaught exception on any rank aborts the whole job, and
    each rank's CPU thread pools (Numba's and OpenBLAS's) are capped at its share of the cores of
    its machine (``comm.cpu_threads`` says what was set; a pool whose size the environment sets,
    e.g. ``NUMBA_NUM_THREADS``, is left alone)."""
    if not _launched_by_mpi():
        return SingleProcess()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise ImportError("gpunet.distributed.init: this process was started by an MPI launcher but mpi4py "
                          "is not installed; pip install 'gpunet[distributed]' (and an MPI: pip install mpich "
                          "on a laptop, the system MPI on a cluster)") from None
    comm = MPICommunicator()
    if comm.size == 1:
        return SingleProcess()
    _abort_on_uncaught(comm)
    threads = _share_cores(comm)
    if backend.active() == "gpu":
        import cupy

        backend.use(f"gpu:{comm.local_rank % cupy.cuda.runtime.getDeviceCount()}")
        if nccl is not False:
            from cupy.cuda import nccl as nccl_mod

            usable = getattr(nccl_mod, "available", True) and _one_rank_per_gpu(comm)
            if nccl and not usable:
                raise RuntimeError("gpunet.distributed.init(nccl=True): NCCL needs one GPU per rank and CuPy "
                                   "built with NCCL; pass nccl=None to fall back to host copies over MPI")
            if usable:
                comm = NCCLCommunicator(comm.mpi)
    comm.cpu_threads = threads
    return comm
