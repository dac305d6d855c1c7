"""gpunet: neural-network training on the GPU with CuPy alone, and on the CPU with NumPy and Numba.

    import gpunet as gn
    model = gn.Sequential(gn.Linear(784, 256), gn.ReLU(), gn.Linear(256, 10))
"""
from __future__ import annotations

import importlib.util as _ilu
import sys as _sys
from pathlib import Path as _Path

__version__ = "0.1.0"


def _mount_kernels() -> None:
    """Make the top-level ``kernels/`` folder importable as ``gpunet.kernels`` when gpunet runs
    from a source checkout (an installed wheel or editable install maps it already)."""
    if _ilu.find_spec("gpunet.kernels") is not None:
        return
    src = _Path(__file__).resolve().parent.parent / "kernels"
    if (src / "__init__.py").is_file():
        spec = _ilu.spec_from_file_location("gpunet.kernels", src / "__init__.py",
                                            submodule_search_locations=[str(src)])
        module = _ilu.module_from_spec(spec)
        _sys.modules["gpunet.kernels"] = module
        spec.loader.exec_module(module)
        globals()["kernels"] = module


_mount_kernels()

from .cpu_memory import keep_freed_memory  # noqa: E402
from .cpu_threads import start_numba_threads  # noqa: E402

start_numba_threads()
keep_freed_memory()

from . import backend, init, losses, optim  # noqa: E402
from .backend import (  # noqa: E402
    get_array_module, gpu_available, seed, to_device, to_numpy, use,
)
from .layers import (  # noqa: E402
    Flatten, Identity, Layer, LayerDict, LayerList, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Softmax, Tanh,
)
from .layers import BatchNorm1d, BatchNorm2d, Dropout, Dropout2d, GroupNorm, LayerNorm, WeightNorm  # noqa: E402
from .layers import AvgPool2d, Concat, Conv2d, GlobalAvgPool2d, MaxPool2d, Residual  # noqa: E402
from . import models  # noqa: E402
from .testing import gradcheck  # noqa: E402
from .optim import clip_grad_norm  # noqa: E402
from .train import Trainer, callbacks  # noqa: E402
from . import diagnostics, distributed, functional, interop, metrics, onnx, plot  # noqa: E402
from .saving import load, save  # noqa: E402


def __getattr__(name):
    if name == "xp":
        return backend.xp
    if name == "data":
        import importlib

        return importlib.import_module(".data", __name__)
    raise AttributeError(f"module 'gpunet' has no attribute {name!r}")
