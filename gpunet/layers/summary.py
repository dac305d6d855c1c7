"""``print(model)``: one line per layer with its output size and parameter count."""
from __future__ import annotations


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


def _rows(layer, name, in_shape, depth, rows):
    try:
        out_shape = None if in_shape is None else tuple(layer.output_shape(tuple(in_shape)))
    except Exception:
        out_shape = None
    label = type(layer).__name__ + (f"({layer.extra_repr()})" if layer.extra_repr() else "")
    total = layer.num_parameters()
    rows.append(("  " * depth + (f"({name}) " if name else "") + label, _fmt_shape(out_shape), total))
    if layer._children and getattr(layer, "_sequential_shapes", False):
        shape = in_shape
        for cname, child in layer._children.items():
            shape = _rows(child, cname, shape, depth + 1, rows)
    else:
        for cname, child in layer._children.items():
            _rows(child, cname, in_shape if getattr(layer, "_branch_shapes", False) else None, depth + 1, rows)
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


def summarize(layer) -> str:
    rows: list[tuple[str, str, int]] = []
    _rows(layer, "", input_shape_of(layer), 0, rows)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows + [("", "output", 0)])
    lines = [f"{'layer':<{w0}}  {'output':<{w1}}  {'params':>10}"]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c:>10,}" for a, b, c in rows]
    lines.append(f"total parameters: {layer.num_parameters():,}")
    return "\n".join(lines)
