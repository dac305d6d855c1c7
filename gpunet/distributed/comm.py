"""Communicators: the collectives of data-parallel training, on MPI (mpi4py) and NCCL (CuPy).

A ``Communicator`` knows its ``rank`` among ``size`` processes, its ``local_rank`` among the
processes of its node (the GPU it uses) and offers the collectives training needs:

    allreduce(a, op="sum" | "mean")     a ← Σ_r a_r (or (1/size)·Σ_r a_r), in place, on every rank
    broadcast(a, root=0)                a ← a_root, in place
    broadcast_parameters(model)         rank 0's parameters and buffers to every rank
    allreduce_gradients(model, weight)  g ← Σ_r weight_r·g_r over the arena's gradient buffer, in one call
    broadcast_object / allgather_object / barrier

``SingleProcess`` (size 1) does nothing, so a script runs unchanged outside ``mpiexec``.
``MPICommunicator`` reduces host (NumPy) buffers with MPI and device (CuPy) buffers through a
host copy, since the pip MPI wheels are not CUDA-aware; ``NCCLCommunicator`` reduces device
buffers with NCCL on CuPy's current stream (its unique id travels over MPI) and host buffers with
MPI. Every rank must call every collective in the same order (the Trainer does so by batch
count, never by time).
"""
from __future__ import annotations

import hashlib
import sys

import numpy as np

from .. import backend

_OPS = ("sum", "mean")


def _check_op(op, who):
    if op not in _OPS:
        raise ValueError(f"{who}(op): expected 'sum' or 'mean', got {op!r}")


def _check_array(a, who):
    if not backend.is_array(a):
        raise TypeError(f"{who}(array): expected a NumPy or CuPy array, got {backend.describe_non_array(a)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{who}(array): the array must be C-contiguous (collectives work in place)")


def layout_signature(model) -> tuple:
    """(arena size, dtype, digest of the layout and buffers): equal on ranks that built the same model."""
    arena = model.arena
    parts = [(e.name, e.offset, e.shape, e.decay, e.trainable) for e in arena.entries]
    parts += [(name, tuple(b.shape), str(b.dtype)) for name, b in model.named_buffers()]
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    return int(arena.size), str(arena.dtype), digest


class Communicator:
    """The collectives, written once over four primitives that subclasses provide:
    ``_allreduce_sum(a)`` and ``_broadcast(a, root)`` in place, ``broadcast_object`` and
    ``allgather_object``."""

    rank = 0
    size = 1
    local_rank = 0
    local_size = 1
    backend_name = "none"
    cpu_threads: dict = {}  # the thread-pool sizes init() set for this rank, e.g. {"numba": 1, "blas": 1}

    @property
    def is_root(self) -> bool:
        """True on rank 0: the rank that prints, writes checkpoints and logs."""
        return self.rank == 0

    # ------------------------------------------------------------------ arrays
    def allreduce(self, array, op: str = "sum"):
        """Σ_r array_r (op="sum") or its mean over ranks (op="mean"), in place on every rank;
        returns ``array``. Integer arrays take "sum" only."""
        _check_op(op, "allreduce")
        _check_array(array, "allreduce")
        if op == "mean" and array.dtype.kind != "f":
            raise TypeError(f"allreduce(op='mean'): expected a float array, got {array.dtype}")
        if self.size > 1 and array.size:
            self._allreduce_sum(array)
            if op == "mean":
                array *= array.dtype.type(1.0 / self.size)
        return array

    def broadcast(self, array, root: int = 0):
        """array ← rank ``root``'s array, in place on every rank; returns ``array``."""
        _check_array(array, "broadcast")
        self._check_root(root, "broadcast")
        if self.size > 1 and array.size:
            self._broadcast(array, root)
        return array

    def _check_root(self, root, who):
        if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < self.size:
            raise ValueError(f"{who}(root): expected a rank in [0, {self.size}), got {root!r}")

    # ------------------------------------------------------------------ models
    def broadcast_parameters(self, model) -> None:
        """Rank 0's parameters (the whole arena, frozen ones included) and buffers (running
        statistics) to every rank. A rank whose model differs from rank 0's (another layout, size
        or dtype) fails here, on every rank, with a message naming both."""
        mine = layout_signature(model)
        if self.size == 1:
            return
        sigs = self.allgather_object(mine)
        bad = [(r, s) for r, s in enumerate(sigs) if s != sigs[0]]
        if bad:
            r, (size, dtype, digest) = bad[0]
            s0, d0, g0 = sigs[0]
            what = (f"{size:,} arena values ({dtype})" if (size, dtype) != (s0, d0)
                    else f"the same size ({size:,} {dtype}) but another layout or other buffers")
            raise ValueError(f"broadcast_parameters: rank {r}'s model has {what}; rank 0's has {s0:,} arena values "
                             f"({d0}, layout {g0}, rank {r}: {digest}). Every rank must build the same model")
        self._broadcast(model.arena.params, 0)
        for _, buf in model.named_buffers():
            if buf.size:
                self._broadcast(buf, 0)

    def allreduce_gradients(self, model, weight: float | None = None) -> None:
        """g ← Σ_r w_r·g_r over ``model.arena.grads`` (its trained prefix), in place, one call.
        With w_r = b_r/B — this rank's share of the global batch — and each g_r the mean
        gradient over the rank's b_r examples, the result is the mean gradient over the global
        batch of B, also when shards are uneven. ``weight=None`` sums (w_r = 1). A non-finite
        gradient on one rank makes the sum non-finite on every rank, so every optimizer skips the
        step together."""
        grads = model.arena.trainable(model.arena.grads)
        if weight is not None:
            w = float(weight)
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"allreduce_gradients(weight): expected a finite share >= 0, got {weight!r}")
            if w != 1.0:
                grads *= grads.dtype.type(w)
        if self.size > 1:
            self._allreduce_sum(grads)

    # ------------------------------------------------------------------ objects
    def allreduce_host(self, values):
        """Σ_r values_r for a short float64 vector on the host (log tallies): a new NumPy array."""
        out = np.array(values, dtype=np.float64)
        return self.allreduce(out)

    def barrier(self) -> None:
        """Wait until every rank has called ``barrier``."""

    def abort(self, code: int = 1) -> None:
        """Stop every process of the job (MPI_Abort); outside MPI, exit."""
        sys.exit(code)

    def broadcast_object(self, obj, root: int = 0):
        return obj

    def allgather_object(self, obj) -> list:
        return [obj]

    def _allreduce_sum(self, a):
        pass

    def _broadcast(self, a, root):
        pass

    def __repr__(self):
        return (f"{type(self).__name__}(rank={self.rank}, size={self.size}, local_rank={self.local_rank}, "
                f"backend={self.backend_name!r})")


class SingleProcess(Communicator):
    """One process: every collective is the identity (and ``barrier`` returns at once)."""


class MPICommunicator(Communicator):
    """Collectives over an mpi4py communicator; device arrays go through a host copy."""

    backend_name = "mpi"

    def __init__(self, mpi_comm=None):
        from mpi4py import MPI

        self.MPI = MPI
        self.mpi = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank, self.size = self.mpi.Get_rank(), self.mpi.Get_size()
        node = self.mpi.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._host = {}  # staging buffers for device arrays, by (dtype, size)

    def _staging(self, a):
        key = (a.dtype.str, a.size)
        buf = self._host.get(key)
        if buf is None:
            buf = self._host[key] = np.empty(a.size, dtype=a.dtype)
        return buf

    def _allreduce_sum(self, a):
        if backend.is_gpu_array(a):
            buf = self._staging(a)
            a.reshape(-1).get(out=buf)
            self.mpi.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
            a.reshape(-1).set(buf)
        else:
            self.mpi.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)

    def _broadcast(self, a, root):
        if backend.is_gpu_array(a):
            buf = self._staging(a)
            a.reshape(-1).get(out=buf)
            self.mpi.Bcast(buf, root=root)
            a.reshape(-1).set(buf)
        else:
            self.mpi.Bcast(a, root=root)

    def broadcast_object(self, obj, root: int = 0):
        self._check_root(root, "broadcast_object")
        return self.mpi.bcast(obj, root=root)

    def allgather_object(self, obj) -> list:
        return self.mpi.allgather(obj)

    def barrier(self) -> None:
        self.mpi.Barrier()

    def abort(self, code: int = 1) -> None:
        self.mpi.Abort(code)


class NCCLCommunicator(MPICommunicator):
    """Device arrays reduced by NCCL between GPUs (one rank per GPU), host arrays by MPI."""

    backend_name = "nccl"

    def __init__(self, mpi_comm=None):
        super().__init__(mpi_comm)
        from cupy.cuda import nccl

        self.nccl = nccl
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.mpi.bcast(uid, root=0)
        self.device_comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
                       np.dtype(np.int64): nccl.NCCL_INT64, np.dtype(np.int32): nccl.NCCL_INT32}

    def _nccl_type(self, a):
        t = self._types.get(np.dtype(a.dtype))
        if t is None:
            raise TypeError(f"NCCLCommunicator: no NCCL type for {a.dtype}; expected float32, float64, int32 or int64")
        return t

    def _allreduce_sum(self, a):
        if not backend.is_gpu_array(a):
            return super()._allreduce_sum(a)
        import cupy

        ptr = a.data.ptr
        self.device_comm.allReduce(ptr, ptr, a.size, self._nccl_type(a), self.nccl.NCCL_SUM,
                                   cupy.cuda.get_current_stream().ptr)

    def _broadcast(self, a, root):
        if not backend.is_gpu_array(a):
            return super()._broadcast(a, root)
        import cupy

        self.device_comm.bcast(a.data.ptr, a.size, self._nccl_type(a), root, cupy.cuda.get_current_stream().ptr)
