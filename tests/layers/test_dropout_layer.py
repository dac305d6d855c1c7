"""Dropout layer: modes, the mask's key (seed, layer id, step), rng state for gradcheck and
checkpoints, gradients, devices, shards of a batch (batch_offset) and clear errors."""
import copy

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.ops.dropout import dropout_forward
from gpunet.testing import gradcheck


def test_eval_mode_and_p_zero_are_the_identity(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    d = gn.Dropout(0.5).eval()
    assert d(x) is x and d.backward(x) is x and d.step == 0
    d0 = gn.Dropout(0.0)
    assert d0(x) is x and d0.backward(x) is x


def test_training_forward_uses_seed_layer_id_and_step(rng, device):
    gn.seed(17)
    a, b = gn.Dropout(0.4), gn.Dropout(0.4)
    assert (a.layer_id, b.layer_id) == (0, 1)
    x = backend.to_device(rng.standard_normal((33, 65)).astype(np.float32))
    y0 = backend.to_numpy(a(x))
    want, _ = dropout_forward(backend.to_numpy(x), 0.4, seed=17, layer_id=0, step=0)
    assert y0.tobytes() == want.tobytes()  # the same bits on the CPU and the GPU
    assert a.step == 1
    y1 = backend.to_numpy(a(x))
    assert not np.array_equal(y0 != 0, y1 != 0)  # a new mask each training step
    yb = backend.to_numpy(b(x))
    assert not np.array_equal(y0 != 0, yb != 0)  # another layer, another stream
    dy = backend.to_device(rng.standard_normal((33, 65)).astype(np.float32))
    dx = backend.to_numpy(b.backward(dy))
    np.testing.assert_array_equal(dx, np.where(yb != 0, backend.to_numpy(dy) * np.float32(1 / 0.6), 0).astype(np.float32))


def test_layer_ids_restart_with_the_seed_so_models_repeat():
    def build():
        gn.seed(5)
        return gn.Sequential(gn.Linear(6, 8), gn.Dropout(0.5), gn.ReLU(), gn.Dropout(0.3), gn.Linear(8, 2))

    m1, m2 = build(), build()
    assert [m1[1].layer_id, m1[3].layer_id] == [m2[1].layer_id, m2[3].layer_id] == [0, 1]
    x = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)
    for _ in range(3):
        np.testing.assert_array_equal(m1(x), m2(x))
    gn.seed(6)
    np.testing.assert_array_equal(m1[1].layer_id, 0)
    y_seed6 = gn.Dropout(0.5)  # counts from the new seed
    assert y_seed6.layer_id == 0


def test_rng_state_round_trip_repeats_the_mask(rng):
    d = gn.Dropout(0.5)
    x = rng.standard_normal((20, 30)).astype(np.float32)
    d(x)
    state = d.get_rng_state()
    assert state == {"layer_id": d.layer_id, "step": 1}
    y1 = d(x)
    y2 = d(x)
    d.set_rng_state(state)
    np.testing.assert_array_equal(d(x), y1)
    assert d.step == 2 and not np.array_equal(y1, y2)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_gradcheck_in_training_with_a_fixed_rng_state(p, rng):
    d = gn.Dropout(p)
    d.step = 3
    report = gradcheck(d, rng.standard_normal((7, 9)), eps=1e-6)
    assert report["input"] <= 1.0


def test_keep_rate_in_a_layer(rng):
    """Kept fraction of 2^18 elements within 4.89 standard deviations of 1 − p (false alarm 1e-6)."""
    n, p = 1 << 18, 0.25
    y = gn.Dropout(p)(np.ones((512, 512), np.float32))
    kept = int((y != 0).sum())
    assert abs(kept - n * (1 - p)) < 4.89 * np.sqrt(n * p * (1 - p))
    assert set(np.unique(y)) == {0.0, np.float32(1 / (1 - p))}


def test_state_dict_and_parameters_are_empty():
    d = gn.Dropout(0.1)
    assert list(d.state_dict()) == [] and d.parameters() == []
    assert "p=0.1" in repr(d)


@pytest.mark.parametrize("bad", [1.0, -0.5, 2, float("nan"), "0.5", None])
def test_p_outside_the_unit_interval_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"Dropout: p \(the probability of dropping an element\) must be in \[0, 1\)"):
        gn.Dropout(bad)


def test_bad_use_is_a_clear_error(rng):
    d = gn.Dropout(0.5)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        d.backward(np.ones((2, 2), np.float32))
    d(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy has shape \(3, 2\), the forward's output \(2, 3\)"):
        d.backward(np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match="floating-point input"):
        d(np.ones((2, 3), np.int64))


# ---------------------------------------------------------------------- Dropout2d: whole channels
def test_dropout2d_drops_whole_channels_and_scales_the_rest(rng):
    gn.seed(5)
    layer = gn.Dropout2d(0.3)
    x = rng.standard_normal((64, 16, 5, 4)).astype(np.float32) + 3.0  # no zeros of its own
    y = layer(x)
    kept = (y != 0).reshape(64, 16, -1)
    assert (kept.all(axis=2) | ~kept.any(axis=2)).all()  # every channel all kept or all dropped
    keep = kept.all(axis=2)
    assert abs(1 - keep.mean() - 0.3) < 0.06  # 1024 channels: p within about 4 standard errors
    np.testing.assert_allclose(y[keep], (x / 0.7)[keep], rtol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy * (y != 0) / 0.7, rtol=1e-6)
    layer.eval()
    assert layer(x) is x and layer.backward(dy) is dy


def test_dropout2d_is_reproducible_and_advances_per_forward(rng):
    x = np.ones((8, 6, 3, 3), np.float32)
    gn.seed(9)
    a = gn.Dropout2d(0.5)
    m1, m2 = a(x) != 0, a(x) != 0
    gn.seed(9)
    b = gn.Dropout2d(0.5)
    assert np.array_equal(b(x) != 0, m1) and np.array_equal(b(x) != 0, m2) and not np.array_equal(m1, m2)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C, H, W\)"):
        a(np.ones((4, 3), np.float32))


def test_dropout2d_in_a_cnn_trains():
    gn.seed(0)
    model = gn.Sequential(gn.Conv2d(1, 4, 3, padding=1), gn.Dropout2d(0.25), gn.ReLU(), gn.Flatten(),
                          gn.Linear(4 * 6 * 6, 2))
    x = np.random.default_rng(0).standard_normal((16, 1, 6, 6)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    loss = gn.losses.CrossEntropy()
    opt = gn.optim.Adam(model, lr=1e-2)
    first = None
    for _ in range(30):
        value = float(loss(model(x), y))
        first = value if first is None else first
        model.backward(loss.backward())
        opt.step()
    assert value < first


# ---------------------------------------------------------------------- batch_offset: data-parallel shards
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,shape", [(gn.Dropout, (10, 7)), (gn.Dropout2d, (6, 3, 2, 2))])
@pytest.mark.parametrize("k", [1, 3, 4])
def test_shards_inside_batch_offset_draw_the_whole_batch_mask(cls, shape, k, dtype, device):
    """Forward of the whole batch = the forwards of x[:k] inside batch_offset(0) and of x[k:]
    inside batch_offset(k), by two more layers with the same layer id and step; the same for dx."""
    rng = np.random.default_rng(k)
    x = backend.to_device(rng.standard_normal(shape).astype(dtype))
    dy = backend.to_device(rng.standard_normal(shape).astype(dtype))
    gn.seed(3)
    whole, first, rest = cls(0.4), cls(0.4), cls(0.4)
    whole.step = 5
    for shard in (first, rest):
        shard.set_rng_state(whole.get_rng_state())
    y, dx = backend.to_numpy(whole(x)), backend.to_numpy(whole.backward(dy))
    with gn.layers.dropout.batch_offset(0):
        y0, dx0 = backend.to_numpy(first(x[:k])), backend.to_numpy(first.backward(dy[:k]))
    with gn.layers.dropout.batch_offset(k):
        y1, dx1 = backend.to_numpy(rest(x[k:])), backend.to_numpy(rest.backward(dy[k:]))
    assert np.concatenate([y0, y1]).tobytes() == y.tobytes()
    assert np.concatenate([dx0, dx1]).tobytes() == dx.tobytes()
    assert 0 < (y != 0).mean() < 1 and whole.step == first.step == rest.step == 6


def test_batch_offset_reaches_functional_dropout_and_nests():
    import gpunet.functional as F
    from gpunet.layers.dropout import batch_offset, current_batch_offset

    class Net(gn.Layer):
        def forward(self, x):
            return F.dropout(x, 0.5)

    x = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    gn.seed(2)
    whole, shard = Net(), Net()
    whole(x)  # makes its hidden Dropout
    shard.set_rng_state(copy.deepcopy(whole.get_rng_state()))  # the same layer id and step
    y = whole(x)
    assert current_batch_offset() == 0
    with batch_offset(3):
        with batch_offset(5):
            assert current_batch_offset() == 5
            y5 = shard(x[5:])
        assert current_batch_offset() == 3
    assert current_batch_offset() == 0
    assert y5.tobytes() == y[5:].tobytes()


@pytest.mark.parametrize("bad,error", [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)])
def test_batch_offset_rows_must_be_a_non_negative_integer(bad, error):
    from gpunet.layers.dropout import batch_offset, current_batch_offset

    with pytest.raises(error, match=r"batch_offset\(rows\)"):
        with batch_offset(bad):
            pass
    assert current_batch_offset() == 0
