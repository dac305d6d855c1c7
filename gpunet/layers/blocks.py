"""Blocks with more than one path: Residual (ResNet) and Concat (Inception).

Parameter names follow the children's names: a Residual's are "block.*" and "shortcut.*"
("block.0.weight", "shortcut.weight" for a 1×1 convolution shortcut); a Concat's branches are
"0.*", "1.*", ... as in a Sequential.
"""
from __future__ import annotations

from .. import backend
from ..ops import activation
from .base import Layer
from .checks import check_dy
from .containers import Numbered


class Residual(Layer):
    """y = block(x) + shortcut(x), with the identity when ``shortcut`` is None.

    Backward: dx = block.backward(dy) + shortcut.backward(dy) (dy itself for the identity). For a
    block that changes the shape (stride or channels), pass a shortcut that does the same, e.g.
    ``Conv2d(c_in, c_out, 1, stride=2, bias=False)``. Followed by a ``ReLU`` in a ``Sequential`` (as
    in ResNet), the sum and the ReLU are one pass, y = max(block(x) + shortcut(x), 0), and the
    backward starts with the ReLU's mask (``forward_fused``); the numbers are the same.
    """

    _branch_shapes = True

    def __init__(self, block: Layer, shortcut: Layer | None = None):
        super().__init__()
        self.add_child("block", block)
        if shortcut is not None:
            self.add_child("shortcut", shortcut)
        self.has_shortcut = shortcut is not None

    _relu_y = None  # the output of a forward with a fused ReLU, whose mask backward applies

    def forward(self, x):
        return self.forward_fused(x)

    def forward_fused(self, x, relu: bool = False):
        """block(x) + shortcut(x), or max(·, 0) of it in the same pass when ``relu``."""
        fx = self._children["block"](x)
        sx = self._children["shortcut"](x) if self.has_shortcut else x
        if tuple(fx.shape) != tuple(sx.shape):
            what = "shortcut" if self.has_shortcut else "input (identity shortcut)"
            raise ValueError(f"{self.name}: the block's output {tuple(fx.shape)} and the {what} "
                             f"{tuple(sx.shape)} differ; give a shortcut that maps x to the block's shape")
        self._last_input_shape = tuple(x.shape[1:])
        if not relu:
            self._relu_y = None
            return fx + sx
        self._relu_y = activation.add_relu(fx, sx)
        return self._relu_y

    def backward(self, dy):
        if self._relu_y is not None:
            check_dy(self, dy, self._relu_y.shape)
            dy = activation.relu_backward(dy, self._relu_y)
        paths = [self._children["block"]] + ([self._children["shortcut"]] if self.has_shortcut else [])
        for path in paths:
            path.need_input_grad = self.need_input_grad
        dx = paths[0].backward(dy)
        ds = paths[1].backward(dy) if self.has_shortcut else dy
        return dx + ds if self.need_input_grad else None

    def output_shape(self, input_shape):
        return self._children["block"].output_shape(input_shape)

    def input_shape_hint(self):
        return self._children["block"].input_shape_hint()


class Concat(Numbered, Layer):
    """y = concatenate([branch(x) for branch in branches], axis) (axis 1: channels, for Inception).

    Backward splits dy along ``axis`` into each branch's part and returns the sum of the
    branches' dx. Branches are children "0", "1", ...
    """

    _branch_shapes = True

    def __init__(self, branches, axis: int = 1):
        super().__init__()
        branches = list(branches)
        if not branches:
            raise ValueError("Concat: branches must hold at least one layer")
        if int(axis) < 1:
            raise ValueError(f"Concat: axis must be >= 1 (axis 0 is the batch), got {axis!r}")
        for i, b in enumerate(branches):
            self.add_child(str(i), b)
        self.axis = int(axis)
        self._sizes = None

    def forward(self, x):
        outs = [b(x) for b in self._children.values()]
        for name, o in zip(self._children, outs):
            ref = outs[0]
            if o.ndim != ref.ndim or o.ndim <= self.axis or any(
                    a != b for d, (a, b) in enumerate(zip(o.shape, ref.shape)) if d != self.axis):
                raise ValueError(f"{self.name}: branch {name} gives shape {tuple(o.shape)}, branch 0 gives "
                                 f"{tuple(ref.shape)}; they must agree except on axis {self.axis}")
        self._sizes = [o.shape[self.axis] for o in outs]
        self._last_input_shape = tuple(x.shape[1:])
        return backend.get_array_module(outs[0]).concatenate(outs, axis=self.axis)

    def backward(self, dy):
        if self._sizes is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        xp = backend.get_array_module(dy)
        dx, start = None, 0
        index = [slice(None)] * dy.ndim
        for branch, size in zip(self._children.values(), self._sizes):
            branch.need_input_grad = self.need_input_grad
            index[self.axis] = slice(start, start + size)
            g = branch.backward(xp.ascontiguousarray(dy[tuple(index)]))
            if self.need_input_grad:
                dx = g if dx is None else dx + g
            start += size
        return dx

    def output_shape(self, input_shape):
        shapes = [tuple(b.output_shape(input_shape)) for b in self._children.values()]
        a = self.axis - 1
        total = sum(s[a] for s in shapes)
        return shapes[0][:a] + (total,) + shapes[0][a + 1:]

    def extra_repr(self):
        return f"axis={self.axis}"
