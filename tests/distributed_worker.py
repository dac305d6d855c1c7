"""Cases for tests/test_distributed.py, run as ``mpiexec -n 2 python tests/distributed_worker.py CASE OUT``.

Each case runs the data-parallel computation on every rank and, on rank 0, the same computation
in one process (a Trainer without ``distributed``) from the same seed; every rank saves what it
got to OUT/CASE.rank<r>.npz for the test to compare.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

import gpunet as gn


def data(n, dtype="float32", seed=1, features=12, classes=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(dtype)
    y = (x[:, :classes].argmax(axis=1) + (rng.random(n) < 0.2)) % classes
    return x, y.astype(np.int64)


def mlp(dtype="float32", bn=False, comm=None, width=16):
    # no bias before a batch norm: its exact gradient is 0, and Adam turns the rounding noise in its
    # place into steps of size lr, different in every summation order
    layers = [gn.Linear(12, width, init="he_normal", dtype=dtype, bias=not bn)]
    if bn:
        layers.append(gn.BatchNorm1d(width, dtype=dtype, sync=comm))
    layers += [gn.ReLU(), gn.Dropout(0.3), gn.Linear(width, 4, dtype=dtype)]
    return gn.Sequential(*layers)


def trainer(model, comm, callbacks=(), clip=1.0):
    opt = gn.optim.Adam(model, lr=1e-2, clip_norm=clip)
    return gn.Trainer(model, "cross_entropy", opt, metrics=["accuracy"], callbacks=list(callbacks),
                      distributed=comm)


def params(model):
    return gn.to_numpy(model.arena.params).copy()


def fit_both(comm, build, x, y, **fit):
    """(parallel params, parallel history, evaluate) and the same from one process on rank 0."""
    out = {}
    for tag, c in (("dp", comm), ("one", None)):
        if tag == "one" and comm.rank != 0:
            break
        gn.seed(0)
        model = build(c)
        t = trainer(model, c)
        h = t.fit(x, y, verbose=0, **fit)
        out[f"{tag}_params"] = params(model)
        out[f"{tag}_loss"] = np.asarray(h["loss"])
        out[f"{tag}_eval"] = np.asarray(list(t.evaluate(x, y).values()))
        out[f"{tag}_stats"] = np.concatenate([gn.to_numpy(b).ravel().astype(np.float64) for b in model.buffers()] or
                                             [np.zeros(0)])
    return out


def case_equal(comm):
    """MLP with dropout and clipping, no BatchNorm: 20 Adam steps, batch 31 (uneven shards), then a
    second fit with a last batch of 10 (630 = 20·31 + 10)."""
    out = {}
    for dtype in ("float32", "float64"):
        x, y = data(620, dtype)
        r = fit_both(comm, lambda c: mlp(dtype), x, y, epochs=1, batch_size=31)
        out.update({f"{dtype}_{k}": v for k, v in r.items()})
    x, y = data(630)
    r = fit_both(comm, lambda c: mlp(), x, y, epochs=2, batch_size=31)
    out.update({f"last_{k}": v for k, v in r.items()})
    return out


def case_syncbn(comm):
    """BatchNorm1d/2d with sync=comm against one process: forward, backward, running statistics;
    and a Trainer run of an MLP with a synchronized BatchNorm."""
    out = {}
    rng = np.random.default_rng(3)
    cases = (("bn1", (10, 5), gn.BatchNorm1d, {"dtype": "float64"}, 2, 1),
             ("bn2", (6, 3, 4, 4), gn.BatchNorm2d, {"dtype": "float64"}, 2, 1),
             # float32 values far from 0 with a small spread; no running statistics (no shift)
             ("far", (12, 4), gn.BatchNorm1d, {"dtype": "float32"}, 0.01, 1000.0),
             ("nostats", (9, 3), gn.BatchNorm1d, {"dtype": "float64", "track_running_stats": False}, 3, -2))
    for name, shape, cls, kw, scale, offset in cases:
        x = (rng.normal(size=shape) * scale + offset).astype(kw["dtype"])
        dy = rng.normal(size=shape).astype(kw["dtype"])
        a, b = gn.distributed.shard_bounds(shape[0], comm.rank, comm.size)
        for tag, c, rows in (("dp", comm, slice(a, b)), ("one", None, slice(None))):
            layer = cls(shape[1], sync=c, **kw)
            layer.weight[...] = np.linspace(0.5, 1.5, shape[1])
            layer.train()
            share = (b - a) / shape[0] if tag == "dp" else 1.0
            y = layer(x[rows])
            dx = layer.backward(dy[rows] / share) * share  # dy of the shard's mean loss, dx rescaled
            grads = np.concatenate([np.asarray(g) for g in layer.gradients()]) * share
            if tag == "dp":
                comm.allreduce(grads)
            out[f"{name}_{tag}_y"], out[f"{name}_{tag}_dx"], out[f"{name}_{tag}_grads"] = y, dx, grads
            if layer.track_running_stats:
                out[f"{name}_{tag}_running"] = np.concatenate([layer.running_mean, layer.running_var])
        out[f"{name}_rows"] = np.array([a, b])
    x, y = data(200)
    r = fit_both(comm, lambda c: mlp(bn=True, comm=c), x, y, epochs=2, batch_size=32)
    out.update({f"fit_{k}": v for k, v in r.items()})
    r = fit_both(comm, lambda c: mlp(bn=True), x, y, epochs=2, batch_size=32)  # rank-local batch norm
    out.update({f"local_{k}": v for k, v in r.items()})
    return out


def case_early(comm):
    """EarlyStopping on val_loss stops every rank at the same epoch as one process."""
    x, y = data(300, seed=5)
    xv, yv = data(90, seed=6)
    out = {}
    for tag, c in (("dp", comm), ("one", None)):
        if tag == "one" and comm.rank != 0:
            break
        gn.seed(0)
        model = mlp()
        stop = gn.callbacks.EarlyStopping(patience=1, min_delta=0.01, verbose=0)
        h = trainer(model, c, [stop]).fit(x, y, val=(xv, yv), epochs=30, batch_size=20, verbose=0)
        out[f"{tag}_epochs"] = np.asarray(h.epochs)
        out[f"{tag}_val_loss"] = np.asarray(h["val_loss"])
    return out


def case_checkpoint(comm, folder, mode):
    """mode "first": 2 epochs, a checkpoint by rank 0 after each; "resume": on to 4 epochs from
    the second; "straight": 4 epochs in one run."""
    x, y = data(240, seed=7)
    path = os.path.join(folder, "ckpt-{epoch}.gnck")
    gn.seed(0)
    model = mlp(bn=True, comm=comm)
    t = trainer(model, comm, [gn.callbacks.ModelCheckpoint(path, save_best_only=False, verbose=0)])
    resume = path.format(epoch=2) if mode == "resume" else None
    t.fit(x, y, epochs=2 if mode == "first" else 4, batch_size=24, verbose=0, resume=resume)
    return {"params": params(model), "files": np.array(sorted(f for f in os.listdir(folder) if f.endswith(".gnck")))}


def case_nonfinite(comm):
    """A NaN in rank 1's gradient at the second step makes every rank skip that step."""
    x, y = data(128, seed=8)
    gn.seed(0)
    model = mlp()
    t = trainer(model, comm)

    class Poison(gn.callbacks.Callback):
        def on_batch_begin(self, step, logs=None):
            self.step = step

    poison = Poison()
    t.callbacks.append(poison)
    poison.set_trainer(t)
    backward = model.backward

    def poisoned(dy):
        dx = backward(dy)
        if comm.rank == 1 and poison.step == 1:
            model.arena.grads[0] = np.nan
        return dx

    model.backward = poisoned
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return {"params": params(model), "skipped": np.array([t.optimizer.skipped_steps])}


def case_mismatch(comm):
    """Rank 1 builds a wider model: broadcast_parameters fails on every rank."""
    model = mlp(width=16 if comm.rank == 0 else 24)
    model.build((12,))
    comm.broadcast_parameters(model)
    return {}


def case_fail(comm):
    """Rank 1 raises after the first epoch: the job must end, not hang."""
    x, y = data(64)

    class Fail(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            if comm.rank == 1:
                raise RuntimeError("rank 1 fails on purpose")

    trainer(mlp(), comm, [Fail()]).fit(x, y, epochs=100, batch_size=16, verbose=0)
    return {}


def case_small_sets(comm):
    """A validation or evaluation set of fewer rows than ranks fails at once, naming the argument."""
    x, y = data(40)
    t = trainer(mlp(), comm)
    out = {}
    for key, call in (("fit", lambda: t.fit(x, y, val=(x[:1], y[:1]), epochs=1, batch_size=8, verbose=0)),
                      ("evaluate", lambda: t.evaluate(x[:1], y[:1]))):
        try:
            call()
            out[key] = np.array(["no error"])
        except ValueError as exc:
            out[key] = np.array([str(exc)])
    out["epoch"] = np.array([t.epoch])  # the failed fit trained nothing
    return out


def case_collectives(comm):
    """allreduce (sum, mean, int), broadcast, objects, layout signature."""
    r = comm.rank
    a = np.arange(5, dtype=np.float64) + r
    b = np.full(3, r + 1, dtype=np.float32)
    i = np.array([r + 1], dtype=np.int64)
    comm.allreduce(a)
    comm.allreduce(b, op="mean")
    comm.allreduce(i)
    c = np.full(4, float(r))
    comm.broadcast(c, root=1)
    objs = comm.allgather_object({"rank": r})
    comm.barrier()
    from gpunet.kernels.common import blas

    blas_now = blas.BLAS.set_threads_local(1) if blas.BLAS is not None else -1  # read back (and restore)
    if blas.BLAS is not None:
        blas.BLAS.set_threads_local(blas_now)
    return {"a": a, "b": b, "i": i, "c": c, "objs": np.array([json.dumps(objs)]),
            "threads": np.array([json.dumps(comm.cpu_threads)]), "blas_now": np.array([blas_now]),
            "meta": np.array([comm.size, comm.local_rank, comm.local_size])}


def case_gpu_staged(comm):
    """GPU backend, two ranks sharing the one GPU (NCCL refuses that): device buffers reduced
    through host copies over MPI; a Trainer run against one process on the GPU."""
    import cupy

    a = cupy.arange(6, dtype=cupy.float32) + comm.rank
    comm.allreduce(a)
    b = cupy.full(4, float(comm.rank), dtype=cupy.float64)
    comm.broadcast(b, root=1)
    x, y = data(620)
    r = fit_both(comm, lambda c: mlp(), x, y, epochs=1, batch_size=31)
    return {"a": cupy.asnumpy(a), "b": cupy.asnumpy(b), "backend": np.array([comm.backend_name]),
            "device": np.array([gn.backend.active()]), **r}


def case_nccl_one_rank(comm):
    """An NCCLCommunicator of one rank (this process alone): every collective runs through NCCL on
    CuPy's stream and leaves the values as they are; a dtype NCCL lacks is refused."""
    import cupy

    nccl = gn.distributed.NCCLCommunicator()
    out = {"backend": np.array([nccl.backend_name]), "size": np.array([nccl.size])}
    for dtype in ("float32", "float64", "int32", "int64"):
        a = cupy.arange(1000, dtype=dtype)
        nccl._allreduce_sum(a)
        nccl._broadcast(a, 0)
        out[dtype] = cupy.asnumpy(a)
    model = mlp()
    model.arena.grads[...] = 1.0
    nccl.allreduce_gradients(model, weight=0.5)
    out["grads"] = gn.to_numpy(model.arena.trainable(model.arena.grads))
    try:
        nccl._allreduce_sum(cupy.zeros(3, dtype=cupy.float16))
        out["float16"] = np.array(["accepted"])
    except TypeError as exc:
        out["float16"] = np.array([str(exc)])
    return out


def main():
    case, out = sys.argv[1], sys.argv[2]
    gn.use(os.environ.get("GPUNET_BACKEND", "cpu"))
    comm = gn.distributed.init()
    if case == "checkpoint":
        result = case_checkpoint(comm, out, sys.argv[3])
        case = f"checkpoint_{sys.argv[3]}"
    else:
        result = globals()[f"case_{case}"](comm)
    np.savez(os.path.join(out, f"{case}.rank{comm.rank}.npz"), **result)


if __name__ == "__main__":
    main()
