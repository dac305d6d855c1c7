"""The derived backward of forward-only modules: a record of one training forward, replayed in reverse.

A ``Layer`` subclass that defines ``forward`` and no ``backward`` is recorded when it is called in
training mode. Its input arrives in ``forward`` as a ``Recorded`` value (an array with a place in
the record), and so do its own parameters; each child layer called on a recorded value, and each
``gpunet.functional`` op (also reached through ``+ - * / @``, ``.reshape``, ``.sum``, indexing…),
adds one entry to the module's ``Tape`` and returns a recorded value. ``backward(dy)`` replays the
tape from the last entry to the first: a child's entry calls the child's own explicit backward
(its kernels), an op's entry its backward formula. The gradient of a value used more than once is
the sum of its consumers' contributions, added in forward order (so ``f(x) + x`` gives exactly the
numbers of ``Residual``). Recording is at layer granularity: no per-element tape.

A layer called twice in one forward (a shared ReLU, weight sharing) has the state of each call
kept and put back for that call's backward; its parameters' gradients add up. Parameters of
children used directly in an op (``x @ self.fc.weight``) are not recorded: call the child instead.
"""
from __future__ import annotations

from .. import backend

RECORDABLE = ("child layers, gpunet.functional ops (add, sub, mul, div, neg, matmul, transpose, concat, "
              "reshape, flatten, relu, leaky_relu, tanh, sigmoid, softmax, log_softmax, dropout, max_pool2d, "
              "avg_pool2d, mean, sum), "
              "the operators + - * / @, .reshape, .flatten, .sum, .mean, .T and basic indexing")


class RecordError(TypeError):
    """A non-recordable operation was used on a recorded value."""


class Recorded:
    """An array inside a recorded forward: ``shape``, ``ndim``, ``dtype``, ``size`` and ``len``
    read through; arithmetic and the ops listed in ``RECORDABLE`` are recorded; anything else
    (a NumPy/CuPy function, a conversion to an array) raises ``RecordError`` naming it.
    ``.array`` is the plain array: what is computed from it is a constant (no gradient flows
    back through it), PyTorch's ``detach()``."""

    __slots__ = ("array", "tape", "node")
    __array_priority__ = 1000  # CuPy and NumPy defer binary operators to ours

    def __init__(self, array, tape, node):
        self.array, self.tape, self.node = array, tape, node

    shape = property(lambda self: self.array.shape)
    ndim = property(lambda self: self.array.ndim)
    dtype = property(lambda self: self.array.dtype)
    size = property(lambda self: self.array.size)

    def __len__(self):
        return len(self.array)

    def __repr__(self):
        return f"Recorded(shape={tuple(self.array.shape)}, dtype={self.array.dtype}, in {self.tape.module.name})"

    # ------------------------------------------------------------- recorded operators and methods
    def __add__(self, other):
        return _f().add(self, other)

    def __radd__(self, other):
        return _f().add(other, self)

    def __sub__(self, other):
        return _f().sub(self, other)

    def __rsub__(self, other):
        return _f().sub(other, self)

    def __mul__(self, other):
        return _f().mul(self, other)

    def __rmul__(self, other):
        return _f().mul(other, self)

    def __truediv__(self, other):
        return _f().div(self, other)

    def __rtruediv__(self, other):
        return _f().div(other, self)

    def __neg__(self):
        return _f().neg(self)

    def __matmul__(self, other):
        return _f().matmul(self, other)

    def __rmatmul__(self, other):
        return _f().matmul(other, self)

    def __getitem__(self, index):
        return _f().getitem(self, index)

    def reshape(self, *shape):
        return _f().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def flatten(self, start_dim: int = 0):
        return _f().flatten(self, start_dim)

    def sum(self, axis=None, keepdims=False):
        return _f().sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _f().mean(self, axis=axis, keepdims=keepdims)

    @property
    def T(self):
        return _f().transpose(self)

    # comparisons give plain (boolean) arrays: they carry no gradient
    def __gt__(self, other):
        return self.array > _plain(other)

    def __ge__(self, other):
        return self.array >= _plain(other)

    def __lt__(self, other):
        return self.array < _plain(other)

    def __le__(self, other):
        return self.array <= _plain(other)

    # ------------------------------------------------------------- everything else: a clear error
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        routed = {"add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "div",
                  "negative": "neg", "matmul": "matmul"}.get(ufunc.__name__)
        if routed is not None and method == "__call__" and not kwargs:
            return getattr(_f(), routed)(*inputs)
        raise self._refuse(f"np.{ufunc.__name__}")

    def __array_function__(self, func, types, args, kwargs):
        raise self._refuse(f"np.{func.__name__}")

    def __array__(self, *args, **kwargs):
        raise self._refuse("converting it to an array (np.asarray, np.array, cupy.asarray)")

    def __getattr__(self, name):
        if name.startswith("__") or not hasattr(self.array, name):
            raise AttributeError(f"a recorded value has no attribute {name!r}")
        raise self._refuse(f".{name}")

    def _refuse(self, what: str) -> RecordError:
        return RecordError(f"{self.tape.module.name}.forward: {what} is not recordable, so the derived backward "
                           f"could not follow it. Recordable on a recorded value: {RECORDABLE}. Or write the "
                           f"module's backward yourself.")


def _f():
    from .. import functional

    return functional


def _plain(v):
    return v.array if type(v) is Recorded else v


class Entry:
    """One recorded call: a child layer (``layer``) or an op (``backward``), its input nodes
    (None for a constant) and its output node; ``state`` holds the layer's forward state when
    it was called again later in the same forward."""

    __slots__ = ("layer", "backward", "inputs", "output", "state", "name")

    def __init__(self, layer, backward, inputs, output, name):
        self.layer, self.backward, self.inputs, self.output, self.name = layer, backward, inputs, output, name
        self.state = None


class Tape:
    """The record of one training forward of ``module``. Node 0 is the input; a node ``learns``
    when it depends on a parameter, ``from_input`` when it depends on the input."""

    def __init__(self, module, x):
        self.module = module
        self.entries: list[Entry] = []
        self.learns = [False]
        self.from_input = [True]
        self.params = {}  # node -> name of the module's own parameter
        self.calls = {}   # id(layer) -> index of its latest entry
        self.active = True
        self.dropouts = 0  # gpunet.functional.dropout calls so far (each has its own random stream)
        self.x_shape, self.x_dtype = tuple(x.shape), x.dtype
        self.output = None
        self.out_shape = None

    def value(self, array, learns: bool, from_input: bool) -> Recorded:
        self.learns.append(learns)
        self.from_input.append(from_input)
        return Recorded(array, self, len(self.learns) - 1)

    def check_live(self, what: str) -> None:
        if not self.active:
            raise RecordError(f"{self.module.name}: {what} was given a value recorded in an earlier forward; "
                              "recorded values live for one forward pass")


def tape_of(values, what: str):
    """The tape of the recorded values among ``values`` (None if there are none); one tape only."""
    tape = None
    for v in values:
        if type(v) is Recorded:
            if tape is None:
                tape = v.tape
            elif v.tape is not tape:
                raise RecordError(f"{what}: its inputs come from the forwards of different modules "
                                  f"({tape.module.name}, {v.tape.module.name})")
    if tape is not None:
        tape.check_live(what)
    return tape


def _has_params(layer) -> bool:
    return bool(layer._params) or any(_has_params(c) for c in layer._children.values())


# ---------------------------------------------------------------------- recording
def forward(module, x):
    """Run ``module.forward`` on a recorded input; keep the tape on the module for ``backward``."""
    module.__dict__["_tape"] = None
    tape = Tape(module, x)
    own = list(module._params.items())
    for name, p in own:  # the module's own parameters are recorded values during its forward
        v = tape.value(p, True, False)
        tape.params[v.node] = name
        module.__dict__[name] = v
    try:
        out = module.forward(Recorded(x, tape, 0))
    finally:
        for name, p in own:
            module.__dict__[name] = p
        tape.active = False
    if type(out) is not Recorded or out.tape is not tape:
        got = "a recorded value of another module" if type(out) is Recorded else type(out).__name__
        raise RecordError(f"{module.name}.forward must return the value it computed from its input through child "
                          f"layers and gpunet.functional ops, got {got}")
    tape.output, tape.out_shape = out.node, tuple(out.array.shape)
    module.__dict__["_tape"] = tape
    return out.array


def call(layer, v: Recorded) -> Recorded:
    """A child layer called on a recorded value: run it, add its entry."""
    tape = v.tape
    tape.check_live(layer.name)
    last = tape.calls.get(id(layer))
    if last is not None and tape.entries[last].state is None:
        tape.entries[last].state = snapshot(layer)  # its next forward overwrites what backward needs
    y = layer(v.array)
    if type(y) is Recorded or not backend.is_array(y):
        raise RecordError(f"{tape.module.name}: child {layer.name} returned {type(y).__name__}, not an array")
    tape.calls[id(layer)] = len(tape.entries)
    out = tape.value(y, tape.learns[v.node] or _has_params(layer), tape.from_input[v.node])
    tape.entries.append(Entry(layer, None, (v.node,), out.node, layer.name))
    return out


def op(name: str, out, inputs, backward):
    """Record an op: ``out`` (an array) computed from ``inputs`` (recorded values or constants);
    ``backward(dy, needs)`` returns one gradient per input (None where ``needs`` is False).
    Without a recorded input the op is not recorded and ``out`` is returned as it is."""
    tape = tape_of(inputs, f"gpunet.functional.{name}")
    if tape is None:
        return out
    nodes = tuple(v.node if type(v) is Recorded else None for v in inputs)
    learns = any(tape.learns[n] for n in nodes if n is not None)
    from_input = any(tape.from_input[n] for n in nodes if n is not None)
    value = tape.value(out, learns, from_input)
    tape.entries.append(Entry(None, backward, nodes, value.node, name))
    return value


def snapshot(layer):
    """The instance state of ``layer`` and its descendants (shallow: arrays are not copied; the
    layers then take fresh reusable buffers, so that their next forward leaves this state intact)."""
    state = [(l, dict(l.__dict__)) for _, l in layer.named_layers()]
    for l, _ in state:
        l._detach_saved()
    return state


def restore(state) -> None:
    for l, d in state:
        l.__dict__.update(d)


def _total(parts):
    """Σ parts in forward order (they arrive in reverse)."""
    if not parts:
        return None
    total = parts[-1]
    for p in reversed(parts[:-1]):
        total = total + p
    return total


# ---------------------------------------------------------------------- replay
def backward(module, dy):
    """Replay ``module``'s tape in reverse; return dx (None when ``need_input_grad`` is False).
    Overwrites the gradients of every parameter below ``module``, zero for those not used."""
    tape = module.__dict__.get("_tape")
    if tape is None:
        raise RuntimeError(f"{module.name}: backward called without a recorded training forward (call the module, "
                           "module(x), in training mode, not module.forward(x) or in eval mode)")
    if tuple(getattr(dy, "shape", ())) != tape.out_shape:
        raise ValueError(f"{module.name}: dy has shape {tuple(getattr(dy, 'shape', ()))}, the forward's output "
                         f"{tape.out_shape}")
    module.__dict__["_tape"] = None
    want_input = module.need_input_grad

    def needs(n):
        return n is not None and (tape.learns[n] or (want_input and tape.from_input[n]))

    called = {}
    for e in tape.entries:
        if e.layer is not None:
            called.setdefault(id(e.layer), []).append(e)
    shared = {k: es for k, es in called.items() if len(es) > 1}
    final = {k: snapshot(es[0].layer) for k, es in shared.items()}
    sums = {}  # id(layer) -> [its gradients after each call's backward], for shared layers
    done = set()
    grads = {tape.output: [dy]}
    for e in reversed(tape.entries):
        g = _total(grads.pop(e.output, None))
        if g is None:
            continue
        if e.layer is not None:
            layer, node = e.layer, e.inputs[0]
            if not needs(node) and not _has_params(layer):
                continue  # nothing to learn and no dx wanted: its backward would be wasted work
            if e.state is not None:
                restore(e.state)
            had = layer.__dict__.get("need_input_grad")
            layer.need_input_grad = needs(node)
            try:
                dx = layer.backward(g)
            finally:
                if had is None:
                    layer.__dict__.pop("need_input_grad", None)
                else:
                    layer.__dict__["need_input_grad"] = had
            done.add(id(layer))
            if id(layer) in shared:
                sums.setdefault(id(layer), []).append([gr.copy() for gr in layer.gradients()])
            if needs(node):
                grads.setdefault(node, []).append(dx)
        else:
            flags = tuple(needs(n) for n in e.inputs)
            for n, need, gi in zip(e.inputs, flags, e.backward(g, flags)):
                if need:
                    grads.setdefault(n, []).append(gi)
    for k, state in final.items():
        restore(state)  # the state after the whole forward (dropout's step counter, for one)
        for dst, *parts in zip(shared[k][0].layer.gradients(), *sums.get(k, [])):
            if parts:
                dst[...] = _total(parts)
    for node, name in tape.params.items():
        total = _total(grads.pop(node, None))
        if total is None:
            module._grads[name].fill(0)
        else:
            module._grads[name][...] = total
    pending = list(module._children.values())
    while pending:  # a child not used (or not reached by dy) gets zero gradients
        child = pending.pop()
        if id(child) in done:
            continue
        for gr in child._grads.values():
            gr.fill(0)
        pending.extend(child._children.values())
    if not want_input:
        return None
    dx = _total(grads.pop(0, None))
    if dx is None:
        dx = backend.get_array_module(dy).zeros(tape.x_shape, dtype=tape.x_dtype)
    return dx
