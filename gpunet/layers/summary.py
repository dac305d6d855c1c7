"""``print(model)``: one line per layer with its output size and parameter count.

The shapes come from a probe: one forward pass of a zero sample in eval mode, watching every
layer's output, with each layer's state (what its backward would need) put back afterwards; a
model whose sizes are not all known yet is not probed (``model.build(input_shape)`` does that).
"""
from __future__ import annotations

from .. import backend


def _own_count(layer) -> int:
    n = 0
    for a in layer._params.values():
        k = 1
        for s in a.shape:
            k *= int(s)
        n += k
    return n


def _fmt_shape(shape) -> str:
    return "?" if shape is None else "(" + ", ".join(str(s) for s in ("N",) + tuple(shape)) + ")"


def zero_forward(model, input_shape):
    """One forward pass of a zero sample of ``input_shape`` in eval mode (the mode put back)."""
    modes = [(layer, layer.training) for _, layer in model.named_layers()]
    params = model.parameters()
    xp = backend.get_array_module(params[0]) if params else backend.xp
    try:
        model.eval()
        return model(xp.zeros((1,) + tuple(input_shape), dtype=model.dtype))
    finally:
        for layer, mode in modes:
            layer.training = mode


def probe(model, input_shape) -> dict:
    """{id(layer): one sample's output shape} for every layer one eval forward of a zero sample
    calls, on a model whose sizes are all known; the layers' state is put back afterwards (a
    pending backward still works)."""
    from .record import restore, snapshot

    shapes = {}
    state = snapshot(model)
    try:
        for _, layer in model.named_layers():
            def watched(x, _forward=layer.forward, _id=id(layer)):
                y = _forward(x)
                shapes[_id] = tuple(y.shape[1:])
                return y

            layer.__dict__["forward"] = watched
        zero_forward(model, input_shape)
    finally:
        for layer, saved in state:
            layer.__dict__.clear()
            layer.__dict__.update(saved)
    return shapes


def _rows(layer, name, in_shape, depth, rows, seen):
    out_shape = seen.get(id(layer))
    try:
        if out_shape is None and in_shape is not None:
            out_shape = tuple(layer.output_shape(tuple(in_shape)))
    except Exception:
        out_shape = None
    label = type(layer).__name__ + (f"({layer.extra_repr()})" if layer.extra_repr() else "")
    total = layer.num_parameters()
    rows.append(("  " * depth + (f"({name}) " if name else "") + label, _fmt_shape(out_shape), total))
    if layer._children and getattr(layer, "_sequential_shapes", False):
        shape = in_shape
        for cname, child in layer._children.items():
            shape = _rows(child, cname, shape, depth + 1, rows, seen)
    else:
        for cname, child in layer._children.items():
            _rows(child, cname, in_shape if getattr(layer, "_branch_shapes", False) else None, depth + 1, rows,
                  seen)
    return out_shape


def input_shape_of(layer):
    seen = getattr(layer, "_last_input_shape", None)
    if seen is not None:
        return seen
    probe = layer
    while probe is not None:
        hint = probe.input_shape_hint()
        if hint is not None:
            return hint
        kids = list(probe._children.values())
        probe = kids[0] if kids and getattr(probe, "_sequential_shapes", False) else None
    return None


def summarize(layer, input_shape=None) -> str:
    rows: list[tuple[str, str, int]] = []
    shape = input_shape_of(layer) if input_shape is None else tuple(input_shape)
    seen = {}
    if shape is not None and layer.built:
        try:
            seen = probe(layer, shape)
        except Exception:  # a shape the model cannot take: the rows say "?"
            seen = {}
    _rows(layer, "", shape, 0, rows, seen)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows + [("", "output", 0)])
    lines = [f"{'layer':<{w0}}  {'output':<{w1}}  {'params':>10}"]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c:>10,}" for a, b, c in rows]
    lines.append(f"total parameters: {layer.num_parameters():,}")
    return "\n".join(lines)
