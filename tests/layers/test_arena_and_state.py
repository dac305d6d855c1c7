"""The flat parameter arena and state dicts."""
import numpy as np
import pytest

import gpunet as gn
from gpunet.arena import ALIGN


def _mlp():
    return gn.Sequential(gn.Linear(5, 4), gn.ReLU(), gn.Linear(4, 3))


def test_parameters_are_views_into_one_buffer(rng):
    model = _mlp()
    before = {k: v.copy() for k, v in model.named_parameters()}
    arena = model.arena
    for name, view in model.named_parameters():
        assert view.base is arena.params or np.shares_memory(view, arena.params), name
        np.testing.assert_array_equal(view, before[name])  # values survive flattening
    for name, g in model.named_gradients():
        assert np.shares_memory(g, arena.grads), name
    # a write through the flat buffer is seen by the layer
    arena.params[:] = 0.25
    assert (model[0].weight == 0.25).all()


def test_layout_puts_decayed_weights_first_and_aligns(rng):
    model = _mlp()
    a = model.arena
    assert [e.name for e in a.entries] == ["0.weight", "2.weight", "0.bias", "2.bias"]
    assert all(e.offset % ALIGN == 0 for e in a.entries)
    assert a.n_decay == a.entry("0.bias").offset
    assert a.num_parameters == 5 * 4 + 4 + 4 * 3 + 3
    mask = a.decay_mask()
    assert mask[: a.n_decay].all() and not mask[a.n_decay :].any()


def test_backward_writes_gradients_into_the_arena(rng):
    model = _mlp()
    arena = model.arena
    arena.grads[:] = np.nan  # poison: backward must overwrite every gradient
    x = rng.standard_normal((6, 5)).astype(np.float32)
    model(x)
    model.backward(rng.standard_normal((6, 3)).astype(np.float32))
    for e in arena.entries:
        assert np.isfinite(arena.grads[e.offset : e.offset + e.size]).all(), e.name


def test_state_dict_names_and_round_trip(rng):
    model = _mlp()
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sd["0.weight"].shape == (4, 5)
    other = _mlp()
    other.arena  # loading must keep arena views valid
    other.load_state_dict(sd)
    for (n, a), (_, b) in zip(model.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(a, b)
    assert np.shares_memory(other[0].weight, other.arena.params)
    # state_dict returns copies
    sd["0.weight"][...] = 7
    assert not (model[0].weight == 7).any()


def test_load_state_dict_errors():
    model = _mlp()
    sd = model.state_dict()
    del sd["2.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['2.bias'\]"):
        model.load_state_dict(sd)
    sd = model.state_dict()
    sd["0.weight"] = np.zeros((5, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(5, 4\).*expects \(4, 5\)"):
        model.load_state_dict(sd)
    sd = model.state_dict()
    sd["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match="unexpected keys"):
        model.load_state_dict(sd)
    model.load_state_dict(sd, strict=False)


def test_assigning_over_a_parameter_is_refused():
    lin = gn.Linear(2, 2)
    with pytest.raises(AttributeError, match="assign into it"):
        lin.weight = np.zeros((2, 2))


def test_to_float64_rebuilds_the_arena():
    model = _mlp()
    model.arena
    model.to(dtype=np.float64)
    assert model.arena.params.dtype == np.float64
    assert np.shares_memory(model[0].weight, model.arena.params)


def test_stale_optimizer_refuses_to_step():
    model = _mlp()
    opt = gn.optim.SGD(model, lr=0.1)
    model.to(dtype=np.float64)
    with pytest.raises(RuntimeError, match="create the optimizer after"):
        opt.step()


@pytest.mark.gpu
def test_move_to_gpu_and_back(rng):
    import cupy

    model = _mlp()
    ref = model.state_dict()
    model.to("gpu")
    assert isinstance(model.arena.params, cupy.ndarray)
    x = cupy.asarray(rng.standard_normal((3, 5)).astype(np.float32))
    y = model(x)
    assert isinstance(y, cupy.ndarray)
    model.to("cpu")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, ref[k])
