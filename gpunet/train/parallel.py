"""The Trainer's side of a data-parallel run (``Trainer(..., distributed=comm)``): the checks at the
start of ``fit``, the common starting point of every rank, and each rank's batches.

Every rank sees the whole data set and draws the same permutation; rank r trains on its shard
of each global batch (``gpunet.distributed.sharding``) and every collective happens at the same
batch on every rank.
"""
from __future__ import annotations

from .. import backend
from ..data.batching import batch_sizes, batches
from ..distributed.sharding import shard_rows, shard_sizes, sharded_batches


def check_shards(comm, n: int, batch_size: int, drop_last: bool, who: str) -> None:
    """Every global batch must give every rank at least one row."""
    sizes = batch_sizes(n, batch_size, drop_last)
    if sizes and min(sizes) < comm.size:
        m = min(sizes)
        what = f"batch_size={batch_size}" if m == batch_size else \
            f"{n} samples in batches of {batch_size} leave a last batch of {m}"
        raise ValueError(f"{who}: {what}, fewer rows than the {comm.size} ranks, so a rank would have no "
                         "shard. Pass drop_last=True or a batch_size of at least the number of ranks")


def bn_batch_sizes(comm, n: int, batch_size: int, drop_last: bool):
    """(the global batch sizes, the smallest shard of each): what a synchronized batch norm and a
    rank-local one normalize over."""
    sizes = batch_sizes(n, batch_size, drop_last)
    return sizes, {min(shard_sizes(m, comm.size)) for m in sizes}


def common_start(comm, trainer) -> None:
    """Rank 0's parameters and buffers on every rank (a different model fails here), and rank 0's
    random state where a rank's differs (shuffling and dropout then agree)."""
    comm.broadcast_parameters(trainer.model)
    mine = backend.get_rng_state()
    root = comm.broadcast_object(mine)
    if repr(root) != repr(mine):
        backend.set_rng_state(root)


def average_buffers(comm, model) -> None:
    """Each rank-local layer's float buffers (a batch norm's running statistics, which saw only its
    rank's shards) replaced by their mean over the ranks, after every epoch's training: evaluation,
    checkpoints and the trained model are then the same on every rank. Layers built with
    ``sync=comm`` hold equal statistics already and are left as they are."""
    for _, layer in model.named_layers():
        if getattr(layer, "sync", None) is not None:
            continue
        for buf in layer._buffers.values():
            if buf.size and buf.dtype.kind == "f":
                comm.allreduce(buf, op="mean")


def epoch_batches(comm, x, y, batch_size, shuffle, drop_last, device):
    """``(xb, yb, shard)`` for one epoch: ``shard = (start, m)`` places xb in its global batch of
    m rows; None in a 1-process run."""
    if comm is None:
        for xb, yb in batches(x, y, batch_size, shuffle=shuffle, drop_last=drop_last, device=device):
            yield xb, yb, None
        return
    for xb, yb, start, m in sharded_batches(x, y, batch_size, comm.rank, comm.size, shuffle, drop_last):
        yield xb, yb, (start, m)


def check_evaluation_rows(comm, n: int, who: str) -> None:
    """An evaluation set must give every rank at least one row."""
    if n < comm.size:
        raise ValueError(f"{who}: {n} samples cannot be split over {comm.size} ranks (each evaluates a part); "
                         f"pass at least {comm.size}")


def evaluation_rows(comm, x, y, who: str = "Trainer.evaluate"):
    """This rank's contiguous part of an evaluation set (all of it in a 1-process run)."""
    if comm is None:
        return x, y
    check_evaluation_rows(comm, len(x), who)
    rows = shard_rows(len(x), comm.rank, comm.size)
    return x[rows], y[rows]
