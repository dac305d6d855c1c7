"""Checkpoint files: round trips, atomic writes, truncation and corruption at every byte,
SIGKILL while saving, another architecture, and GPU <-> CPU."""
import os
import signal
import time

import numpy as np
import pytest

import gpunet as gn
from gpunet.train import CheckpointError, Trainer
from gpunet.train import checkpoint as ck


def small_trainer(mlp, h=16, opt="adam"):
    model = mlp(h=h)
    o = gn.optim.Adam(model, lr=1e-2) if opt == "adam" else gn.optim.SGD(model, lr=0.1)
    return Trainer(model, gn.losses.CrossEntropy(), o)


def test_round_trip_of_every_kind_of_value(rng):
    state = {
        "f32": rng.normal(size=(3, 4)).astype(np.float32),
        "f64": rng.normal(size=5),
        "i64": rng.integers(-9, 9, size=(2, 2, 2)),
        "u8": rng.integers(0, 255, size=7).astype(np.uint8),
        "bool": rng.normal(size=6) > 0,
        "zero_d": np.array(3.5),
        "empty": np.zeros((0, 4), np.float32),
        "scalar": np.float32(1.25),
        "nested": [1, 2.5, "s", None, True, (3, [np.arange(3)]), {"k": -1}],
        7: "int key",
        "big": 2 ** 100 + 1,
        "nan": float("nan"),
        "inf": -float("inf"),
    }
    back = ck.loads(ck.dumps(state))
    assert set(back) == set(state)
    for k in ("f32", "f64", "i64", "u8", "bool", "zero_d", "empty"):
        assert back[k].dtype == state[k].dtype and back[k].shape == state[k].shape
        np.testing.assert_array_equal(back[k], state[k])
    assert back["scalar"] == np.float32(1.25) and isinstance(back["scalar"], np.float32)
    assert back["nested"][:5] == [1, 2.5, "s", None, True]
    assert isinstance(back["nested"][5], tuple) and back["nested"][5][0] == 3
    np.testing.assert_array_equal(back["nested"][5][1][0], np.arange(3))
    assert back[7] == "int key" and back["big"] == 2 ** 100 + 1
    assert np.isnan(back["nan"]) and back["inf"] == -np.inf
    with pytest.raises(TypeError, match="cannot save an object of type set"):
        ck.dumps({"x": {1, 2}})


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path, rng):
    path = tmp_path / "a.ck"
    ck.save(path, {"v": 1, "w": rng.normal(size=10)})
    ck.save(path, {"v": 2, "w": rng.normal(size=10)})
    assert os.listdir(tmp_path) == ["a.ck"] and ck.load(path)["v"] == 2


def test_a_failing_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "a.ck"
    ck.save(path, {"v": 1})

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        ck.save(path, {"v": 2})
    monkeypatch.undo()
    assert ck.load(path)["v"] == 1
    assert os.listdir(tmp_path) == ["a.ck"]  # the temporary file was removed


def test_truncated_at_every_byte(mlp, tmp_path):
    t = small_trainer(mlp, h=4)
    blob = ck.dumps(t.state_dict())
    assert ck.loads(blob)["epoch"] == 0
    for k in range(len(blob)):
        with pytest.raises(CheckpointError, match="is truncated"):
            ck.loads(blob[:k])
    with pytest.raises(CheckpointError, match="unexpected bytes after the end"):
        ck.loads(blob + b"\0")
    path = tmp_path / "cut.ck"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint '{path}' is truncated: {len(blob) // 2} bytes of "
                                              f"{len(blob)}"):
        t.load_checkpoint(path)


def test_corrupt_at_every_byte(mlp):
    blob = bytearray(ck.dumps(small_trainer(mlp, h=4).state_dict()))
    for k in range(len(blob)):
        bad = bytearray(blob)
        bad[k] ^= 0x10
        with pytest.raises(CheckpointError, match="not a gpunet checkpoint|truncated|corrupt"):
            ck.loads(bytes(bad))
    with pytest.raises(CheckpointError, match="checksum does not match"):
        bad = bytearray(blob)
        bad[len(blob) // 2] ^= 1
        ck.loads(bytes(bad))


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "x.ck"
    p.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(CheckpointError, match="not a gpunet checkpoint"):
        ck.load(p)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ck.load(tmp_path / "missing.ck")


def test_checkpoint_of_another_architecture(mlp, tmp_path):
    path = tmp_path / "a.ck"
    small_trainer(mlp, h=16).save_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"another architecture: array #0 is '0.weight' of shape \(16, 8\) "
                                              r"in the checkpoint but '0.weight' of shape \(12, 8\) in this model"):
        small_trainer(mlp, h=12).load_checkpoint(path)
    other = gn.Sequential(gn.Linear(8, 16), gn.Tanh(), gn.Linear(16, 3))
    t = Trainer(other, gn.losses.CrossEntropy(), gn.optim.Adam(other))
    with pytest.raises(CheckpointError, match=r"layer #2 is '1' \(ReLU\) in the checkpoint but '1' \(Tanh\)"):
        t.load_checkpoint(path)
    with pytest.raises(CheckpointError, match="holds the state of a Adam optimizer, this Trainer has a SGD"):
        small_trainer(mlp, h=16, opt="sgd").load_checkpoint(path)


def test_trainer_checkpoint_round_trip(mlp, data, tmp_path):
    train, val = data
    t = small_trainer(mlp)
    t.fit(train, val=val, epochs=2, batch_size=32, verbose=0)
    t.save_checkpoint(tmp_path / "c.ck")
    gn.seed(123)
    t2 = small_trainer(mlp)
    state = t2.load_checkpoint(tmp_path / "c.ck")
    assert state["epoch"] == 2 and t2.epoch == 2 and t2.history["val_loss"] == t.history["val_loss"]
    for k, v in t.model.state_dict().items():
        np.testing.assert_array_equal(t2.model.state_dict()[k], v)
    s1, s2 = t.optimizer.state_dict(), t2.optimizer.state_dict()
    assert s1["steps"] == s2["steps"] == 12
    for k in s1["state"]:
        np.testing.assert_array_equal(s1["state"][k], s2["state"][k])
    assert gn.backend.get_rng_state()["bit_generator"] == t.state_dict()["backend_rng"]["bit_generator"]


def _saver(path, pipe_w, n_values, start):
    """Child process: save versions start, start + 1, ... of a consistent state forever."""
    try:
        i = start
        while True:
            ck.save(path, {"version": i, "values": np.full(n_values, i, dtype=np.int64)})
            if i == start:
                os.write(pipe_w, b"1")
            i += 1
    finally:
        os._exit(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_while_saving_leaves_the_last_good_checkpoint(tmp_path):
    """Kill a process that keeps rewriting one checkpoint, at random moments, 20 times: the file
    always loads, whole and consistent, and its version never goes back."""
    path = str(tmp_path / "ck.gnck")
    rng = np.random.default_rng(0)
    last, leftovers = 0, 0
    for _ in range(20):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            os.close(r)
            _saver(path, w, 200_000, last + 1)
        os.close(w)
        assert os.read(r, 1) == b"1"  # the first save is done
        os.close(r)
        time.sleep(float(rng.uniform(0.0, 0.03)))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        state = ck.load(path)
        v = state["version"]
        assert np.all(state["values"] == v) and state["values"].size == 200_000
        assert v > last  # at least the child's first, completed save
        last = v
        tmp = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        leftovers = len(tmp)
    # some kills landed inside a save (they leave a temporary file; the target is never touched)
    assert leftovers >= 1


@pytest.mark.gpu
def test_checkpoints_move_between_gpu_and_cpu(mlp, data, tmp_path):
    train, _ = data
    gn.use("gpu")
    g = small_trainer(mlp)  # built on the active backend: parameters on the GPU
    assert g.model.device == "gpu"
    g.fit(train, epochs=1, batch_size=32, verbose=0)
    g.save_checkpoint(tmp_path / "gpu.ck")
    gn.use("cpu")
    c = small_trainer(mlp)
    c.load_checkpoint(tmp_path / "gpu.ck")
    for k, v in g.model.state_dict().items():
        np.testing.assert_array_equal(c.model.state_dict()[k], gn.to_numpy(v))
    c.fit(train, epochs=2, batch_size=32, verbose=0, resume=tmp_path / "gpu.ck")
    assert len(c.history["loss"]) == 2
    c.save_checkpoint(tmp_path / "cpu.ck")
    gn.use("gpu")
    g2 = small_trainer(mlp)
    g2.load_checkpoint(tmp_path / "cpu.ck")
    assert g2.model.device == "gpu" and g2.epoch == 2
    for k, v in c.model.state_dict().items():
        np.testing.assert_array_equal(gn.to_numpy(g2.model.state_dict()[k]), v)
    m2 = g2.optimizer.state_dict()["state"]
    for k, v in c.optimizer.state_dict()["state"].items():
        np.testing.assert_array_equal(gn.to_numpy(m2[k]), v)
    g2.fit(train, epochs=3, batch_size=32, verbose=0, resume=tmp_path / "cpu.ck")
    assert len(g2.history["loss"]) == 3
