"""Data-parallel training (gpunet.distributed): ``mpiexec -n 2`` runs of tests/distributed_worker.py
on the CPU backend, one Numba thread per rank, compared with the same computation in one process;
and the pieces that need no MPI (sharding, the size-1 communicator) in this process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet.distributed.sharding import shard_bounds, shard_sizes, sharded_batches

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = WORKER.parent.parent


def _mpiexec():
    """mpiexec (gn.distributed.find_mpiexec), where mpi4py is installed too."""
    found = gn.distributed.find_mpiexec()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        found = None
    return found


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None and not os.environ.get("CI"),
    reason="no MPI here: pip install mpi4py mpich (CI installs them, and there these tests are mandatory)")


def run(case, tmp_path, *extra, n=2, timeout=240, check=True, device="cpu"):
    """Run one worker case on ``n`` ranks (``n=1``: plain python, no mpiexec) on the ``device``
    backend; returns (completed process, [rank results])."""
    assert MPIEXEC is not None, "mpiexec and mpi4py are missing (pip install mpi4py mpich)"
    env = dict(os.environ, NUMBA_NUM_THREADS="1", GPUNET_BACKEND=device, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, str(WORKER), case, str(tmp_path), *extra]
    if n > 1:
        cmd = [MPIEXEC, "-n", str(n)] + cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    name = f"{case}_{extra[0]}" if extra else case
    results = [dict(np.load(tmp_path / f"{name}.rank{r}.npz")) for r in range(n)] if check else []
    return proc, results


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# ----------------------------------------------------------------------------- no MPI needed
@pytest.mark.parametrize("n,batch,size,drop_last", [(50, 8, 2, False), (50, 8, 3, False), (51, 10, 4, True),
                                                    (7, 7, 2, False), (30, 4, 3, False)])
def test_shards_cover_every_example_once_per_epoch(n, batch, size, drop_last):
    x = np.arange(n, dtype=np.float32).reshape(n, 1)
    y = np.arange(n)
    gn.seed(4)
    whole = [yb for _, yb in gn.data.batches(x, y, batch, shuffle=True, drop_last=drop_last, device="cpu")]
    parts = []
    for r in range(size):
        gn.seed(4)
        parts.append([(yb, a, m) for _, yb, a, m in sharded_batches(x, y, batch, r, size, True, drop_last)])
    for k, global_batch in enumerate(whole):
        rows = [parts[r][k] for r in range(size)]
        assert all(m == len(global_batch) for _, _, m in rows)
        np.testing.assert_array_equal(np.concatenate([yb for yb, _, _ in rows]), global_batch)
        assert [a for _, a, _ in rows] == [shard_bounds(len(global_batch), r, size)[0] for r in range(size)]
    seen = np.concatenate([yb for p in parts for yb, _, _ in p])
    expected = n - n % batch if drop_last else n
    assert len(seen) == expected and len(np.unique(seen)) == expected
    assert all(len(p) == len(whole) for p in parts)


def test_shard_sizes_differ_by_at_most_one():
    for m in range(1, 40):
        for size in range(1, 6):
            s = shard_sizes(m, size)
            assert sum(s) == m and max(s) - min(s) <= 1
            assert [shard_bounds(m, r, size) for r in range(size)] == \
                [(sum(s[:r]), sum(s[:r + 1])) for r in range(size)]


def test_init_outside_mpiexec_is_a_size_one_communicator_that_changes_nothing(monkeypatch):
    for var in gn.distributed._LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    comm = gn.distributed.init()
    assert isinstance(comm, gn.distributed.SingleProcess)
    assert (comm.rank, comm.size, comm.local_rank, comm.is_root) == (0, 1, 0, True)
    a = np.arange(4.0)
    assert comm.allreduce(a, op="mean") is a and np.array_equal(a, np.arange(4.0))
    assert comm.broadcast_object({"k": 1}) == {"k": 1} and comm.allgather_object(3) == [3]
    comm.barrier()
    with pytest.raises(ValueError, match="op"):
        comm.allreduce(a, op="max")
    with pytest.raises(TypeError, match="array"):
        comm.allreduce([1.0, 2.0])
    # a Trainer given the size-1 communicator trains exactly as one without it
    x = np.random.default_rng(0).normal(size=(64, 12)).astype(np.float32)
    y = np.arange(64) % 4
    got = []
    for c in (comm, None):
        gn.seed(0)
        model = gn.Sequential(gn.Linear(12, 8), gn.ReLU(), gn.Dropout(0.3), gn.Linear(8, 4))
        gn.Trainer(model, "cross_entropy", "adam", distributed=c).fit(x, y, epochs=2, batch_size=16, verbose=0)
        got.append(gn.to_numpy(model.arena.params))
    np.testing.assert_array_equal(got[0], got[1])


def test_trainer_rejects_a_communicator_that_is_not_one():
    model = gn.Sequential(gn.Linear(4, 2))
    with pytest.raises(TypeError, match="distributed"):
        gn.Trainer(model, "mse", "sgd", distributed="mpi")
    with pytest.raises(TypeError, match="sync"):
        gn.BatchNorm1d(4, sync=True)


# ----------------------------------------------------------------------------- mpiexec -n 2
@needs_mpi
def test_collectives_on_two_ranks(tmp_path):
    _, (r0, r1) = run("collectives", tmp_path)
    for r in (r0, r1):
        np.testing.assert_array_equal(r["a"], 2 * np.arange(5) + 1)
        np.testing.assert_array_equal(r["b"], np.full(3, 1.5, np.float32))
        np.testing.assert_array_equal(r["i"], [3])
        np.testing.assert_array_equal(r["c"], np.ones(4))
        assert str(r["objs"][0]) == '[{"rank": 0}, {"rank": 1}]'
        assert list(r["meta"][[0, 2]]) == [2, 2]
    assert {int(r0["meta"][1]), int(r1["meta"][1])} == {0, 1}
    # two ranks on this machine's cores: OpenBLAS capped at each rank's share; Numba's pool, whose
    # size the test sets (NUMBA_NUM_THREADS=1), left alone
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    blas_env = any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    for r in (r0, r1):
        assert str(r["threads"][0]) == ("{}" if blas_env else f'{{"blas": {share}}}')
        if not blas_env and int(r["blas_now"][0]) != -1:
            assert int(r["blas_now"][0]) == share


def test_limit_threads_caps_both_pools_and_leaves_a_pool_the_environment_sizes():
    from gpunet.cpu_threads import limit_threads

    with pytest.raises(ValueError, match="limit_threads"):
        limit_threads(0)
    code = "import gpunet, numba; d = gpunet.cpu_threads.limit_threads(1); print(sorted(d.items()), numba.get_num_threads())"
    clean = {k: v for k, v in os.environ.items()
             if k not in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for extra, expect in (({}, "[('blas', 1), ('numba', 1)] 1"),
                          ({"OPENBLAS_NUM_THREADS": "1"}, "[('numba', 1)] 1"),
                          ({"NUMBA_NUM_THREADS": "2"}, "[('blas', 1)] 2")):
        out = subprocess.run([sys.executable, "-c", code], env={**clean, **extra, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == expect, (extra, out)


@needs_mpi
def test_two_ranks_train_as_one_process(tmp_path):
    """20 Adam steps with dropout and clip_norm, global batch 31 split 16 + 15: every rank holds the
    same parameters, and they agree with the 1-process run to float rounding."""
    _, (r0, r1) = run("equal", tmp_path)
    for key in ("float32", "float64", "last"):
        np.testing.assert_array_equal(r0[f"{key}_dp_params"], r1[f"{key}_dp_params"])
        np.testing.assert_array_equal(r0[f"{key}_dp_loss"], r1[f"{key}_dp_loss"])
    assert _rel(r0["float32_dp_params"], r0["float32_one_params"]) < 1e-5
    assert _rel(r0["float64_dp_params"], r0["float64_one_params"]) < 1e-12
    assert _rel(r0["last_dp_params"], r0["last_one_params"]) < 1e-5
    for key in ("float32", "float64", "last"):  # the logs and evaluate are the global batch's
        np.testing.assert_allclose(r0[f"{key}_dp_loss"], r0[f"{key}_one_loss"], rtol=1e-5)
        np.testing.assert_allclose(r0[f"{key}_dp_eval"], r0[f"{key}_one_eval"], rtol=1e-5)
        np.testing.assert_array_equal(r0[f"{key}_dp_eval"], r1[f"{key}_dp_eval"])


@needs_mpi
def test_sync_batch_norm_matches_one_process(tmp_path):
    _, (r0, r1) = run("syncbn", tmp_path)
    for name, tol in (("bn1", 1e-12), ("bn2", 1e-12), ("far", 1e-5), ("nostats", 1e-12)):
        for r in (r0, r1):
            a, b = r[f"{name}_rows"]
            np.testing.assert_allclose(r[f"{name}_dp_y"], r0[f"{name}_one_y"][a:b], rtol=tol, atol=tol)
            np.testing.assert_allclose(r[f"{name}_dp_dx"], r0[f"{name}_one_dx"][a:b], rtol=100 * tol, atol=tol)
            np.testing.assert_allclose(r[f"{name}_dp_grads"], r0[f"{name}_one_grads"], rtol=100 * tol, atol=tol)
            if name != "nostats":
                np.testing.assert_allclose(r[f"{name}_dp_running"], r0[f"{name}_one_running"], rtol=tol)
        if name != "nostats":
            np.testing.assert_array_equal(r0[f"{name}_dp_running"], r1[f"{name}_dp_running"])
    np.testing.assert_array_equal(r0["fit_dp_params"], r1["fit_dp_params"])
    np.testing.assert_array_equal(r0["fit_dp_stats"], r1["fit_dp_stats"])  # running statistics on every rank
    assert _rel(r0["fit_dp_params"], r0["fit_one_params"]) < 1e-5
    np.testing.assert_allclose(r0["fit_dp_stats"], r0["fit_one_stats"], rtol=1e-5, atol=1e-6)
    # a rank-local batch norm: each rank's statistics saw its own shards; after every epoch they
    # are averaged, so every rank evaluates and saves the same model
    np.testing.assert_array_equal(r0["local_dp_stats"], r1["local_dp_stats"])
    np.testing.assert_array_equal(r0["local_dp_params"], r1["local_dp_params"])
    np.testing.assert_array_equal(r0["local_dp_eval"], r1["local_dp_eval"])
    assert not np.allclose(r0["local_dp_stats"], r0["fit_dp_stats"])  # not the global batch's statistics


@needs_mpi
def test_early_stopping_stops_every_rank_at_the_same_epoch(tmp_path):
    _, (r0, r1) = run("early", tmp_path)
    np.testing.assert_array_equal(r0["dp_epochs"], r1["dp_epochs"])
    np.testing.assert_array_equal(r0["dp_epochs"], r0["one_epochs"])
    assert len(r0["dp_epochs"]) < 30  # it did stop early
    np.testing.assert_allclose(r0["dp_val_loss"], r0["one_val_loss"], rtol=1e-5)


@needs_mpi
def test_a_checkpoint_of_rank_zero_resumes_a_two_rank_run_exactly(tmp_path):
    _, (f0, _) = run("checkpoint", tmp_path, "first")        # epochs 1-2; rank 0 writes ckpt-1, ckpt-2
    assert list(f0["files"]) == ["ckpt-1.gnck", "ckpt-2.gnck"]
    _, (a0, a1) = run("checkpoint", tmp_path, "resume")      # epochs 3-4 from ckpt-2, on both ranks
    assert list(a0["files"]) == [f"ckpt-{e}.gnck" for e in (1, 2, 3, 4)]
    straight = tmp_path / "straight"
    straight.mkdir()
    _, (b0, b1) = run("checkpoint", straight, "straight")    # epochs 1-4 without a break
    np.testing.assert_array_equal(a0["params"], a1["params"])
    np.testing.assert_array_equal(a0["params"], b0["params"])


@needs_mpi
def test_a_nonfinite_gradient_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    _, (r0, r1) = run("nonfinite", tmp_path)
    assert int(r0["skipped"][0]) == int(r1["skipped"][0]) == 1
    np.testing.assert_array_equal(r0["params"], r1["params"])
    assert np.isfinite(r0["params"]).all()


@needs_mpi
def test_a_mismatched_model_fails_clearly_on_every_rank(tmp_path):
    proc, _ = run("mismatch", tmp_path, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "broadcast_parameters: rank 1's model has" in out and "rank 0's has" in out, out


@needs_mpi
def test_a_set_smaller_than_the_ranks_fails_at_once(tmp_path):
    _, (r0, r1) = run("small_sets", tmp_path)
    for r in (r0, r1):
        assert str(r["fit"][0]).startswith("Trainer.fit(val): 1 samples cannot be split over 2 ranks"), r["fit"]
        assert str(r["evaluate"][0]).startswith("Trainer.evaluate: 1 samples cannot be split"), r["evaluate"]
        assert int(r["epoch"][0]) == 0


@needs_mpi
def test_a_failing_rank_ends_the_job_instead_of_hanging(tmp_path):
    proc, _ = run("fail", tmp_path, timeout=120, check=False)  # TimeoutExpired would fail the test
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "rank 1 fails on purpose" in out and "rank 1 of 2 failed; aborting the job" in out, out


# ----------------------------------------------------------------------------- GPU
@needs_mpi
@pytest.mark.gpu
def test_nccl_with_one_rank(tmp_path):
    _, (r,) = run("nccl_one_rank", tmp_path, n=1, device="gpu")
    assert str(r["backend"][0]) == "nccl" and int(r["size"][0]) == 1
    for dtype in ("float32", "float64", "int32", "int64"):
        np.testing.assert_array_equal(r[dtype], np.arange(1000, dtype=dtype))
    np.testing.assert_array_equal(r["grads"], np.full(r["grads"].shape, 0.5, np.float32))
    assert "float16" in str(r["float16"][0]) and "no NCCL type" in str(r["float16"][0])


@needs_mpi
@pytest.mark.gpu
def test_two_ranks_sharing_the_gpu_reduce_through_host_copies(tmp_path):
    _, (r0, r1) = run("gpu_staged", tmp_path, device="gpu")
    for r in (r0, r1):
        assert str(r["backend"][0]) == "mpi" and str(r["device"][0]).startswith("gpu")
        np.testing.assert_array_equal(r["a"], 2 * np.arange(6, dtype=np.float32) + 1)
        np.testing.assert_array_equal(r["b"], np.ones(4))
    np.testing.assert_array_equal(r0["dp_params"], r1["dp_params"])
    assert _rel(r0["dp_params"], r0["one_params"]) < 1e-5
