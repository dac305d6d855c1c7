"""ONNX export: ``gn.onnx.export(model, "model.onnx", input_shape=(1, 28, 28))``.

The model is written as it computes in evaluation mode (batch norms with their running
statistics, dropout as the identity), one ONNX node or a few per layer (``converters.py``), with
the weights as initializers and a dynamic batch dimension: the input is ``input`` of shape
(N, *input_shape), the output ``output``. The graph is built with the ``onnx`` package and
checked by ``onnx.checker`` (with shape inference) before it is written, atomically. Run it
anywhere ONNX Runtime runs:

    import onnxruntime as ort
    session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": images.astype("float32")})[0]

A layer that cannot be exported (a custom one, or a batch norm without running statistics)
stops the export with an ``ExportError`` that names it. Needs ``pip install onnx``.
"""
from __future__ import annotations

import numpy as np

from .converters import CONVERTERS, ExportError, Graph, convert

__all__ = ["export", "ExportError", "CONVERTERS"]

_ELEM = {np.dtype(np.float32): "FLOAT", np.dtype(np.float64): "DOUBLE"}


def _output_shape(model, shape, dtype) -> tuple:
    """One sample's output shape: the model run in evaluation mode on one zero sample."""
    from .. import backend

    was_training = model.training
    model.eval()
    try:
        y = model(backend.to_device(np.zeros((1, *shape), dtype=dtype), model.device))
    finally:
        model.train(was_training)
    return tuple(int(s) for s in y.shape[1:])


def export(model, path, input_shape, opset: int = 17, check: bool = True):
    """Write ``model`` to ``path`` as an ONNX model for inputs of shape (N, *input_shape) (one
    sample's shape, no batch axis); returns the ``onnx.ModelProto``. ``opset`` ≥ 17 (for
    LayerNormalization). A model whose sizes are inferred is built for ``input_shape`` first."""
    try:
        import onnx
    except ImportError:
        raise ImportError("gpunet.onnx.export needs the onnx package: pip install onnx") from None
    from .. import __version__
    from ..layers.base import Layer
    from ..train.atomic import atomic_write

    if not isinstance(model, Layer):
        raise TypeError(f"gpunet.onnx.export(model): expected a gpunet layer or model, got {type(model).__name__}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(f"gpunet.onnx.export(input_shape): one sample's shape, positive integers with no batch "
                         f"axis, e.g. (1, 28, 28); got {input_shape!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 17:
        raise ValueError(f"gpunet.onnx.export(opset): expected an int >= 17, got {opset!r}")
    if not model.built:
        model.build(shape)
    dtype = np.dtype(model.dtype)
    if dtype not in _ELEM:
        raise ExportError(f"gpunet.onnx.export: the model's dtype is {dtype}; ONNX export takes float32 or float64")
    g = Graph(dtype)
    g.name("output")  # reserved for the graph's output
    x = g.name("input")
    y = convert(model, g, x, "")  # a layer that cannot be exported stops it here
    out_shape = _output_shape(model, shape, dtype)
    elem = getattr(onnx.TensorProto, _ELEM[dtype])
    graph = onnx.helper.make_graph(
        g.nodes + [onnx.helper.make_node("Identity", [y], ["output"], name="output")], "gpunet",
        [onnx.helper.make_tensor_value_info(x, elem, ["N", *map(int, shape)])],
        [onnx.helper.make_tensor_value_info("output", elem, ["N", *out_shape])], initializer=g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="gpunet", producer_version=__version__)
    proto.ir_version = min(proto.ir_version, 10)  # what ONNX Runtime releases of 2024 on read
    if check:
        onnx.checker.check_model(proto, full_check=True)
    atomic_write(path, proto.SerializeToString())
    return proto
