"""Whole models in one file: ``gn.save(model, path)`` and ``model = gn.load(path)``.

The file is a safetensors file (https://github.com/huggingface/safetensors): an 8-byte header
length, a JSON header, then the raw tensors. Its tensors are the model's ``state_dict()`` —
parameters and buffers under PyTorch-style names, so any safetensors reader (PyTorch's
``safetensors.torch.load_file`` among them) reads the weights without gpunet — and its header's
string metadata holds the rest:

    format          "gpunet.model"
    format_version  "1" (a file of a later version is refused with a message saying so)
    config          the architecture as JSON (gpunet/layers/config.py): class names and the
                    constructor arguments, layers nested in their containers
    input_shape     one sample's shape the model was built for (JSON), or null
    training        "true" or "false": the mode it was saved in, restored on load
    sha256          SHA-256 of the config, the input shape and every tensor's name, dtype, shape
                    and bytes: a changed byte fails ``load`` ("altered"), a cut file fails its length
                    check ("truncated")

One file rather than a folder (config.json beside model.safetensors): a model is then copied,
uploaded and replaced as one thing, and written atomically (a temporary in the same folder,
fsync'ed and renamed over the target: a failed save leaves the previous file as it was).

Training checkpoints (``Trainer.save_checkpoint``, gpunet/train/checkpoint.py) are another
thing: they hold the optimizer's state, the random state, the epoch and the callbacks' state so
that a run can resume bit for bit, but not the architecture (the script rebuilds it). A model
file holds what is needed to use a trained model without the script that built it.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from . import __version__, backend
from .layers import config as layer_config
from .train.atomic import atomic_write

FORMAT = "gpunet.model"
FORMAT_VERSION = 1

__all__ = ["save", "load", "ModelFileError"]


class ModelFileError(ValueError):
    """A model file that cannot be loaded: not one, truncated, altered, or from a newer gpunet."""


def _digest(config: str, input_shape: str, tensors: dict) -> str:
    h = hashlib.sha256()
    h.update(config.encode())
    h.update(b"\0" + input_shape.encode())
    for name in sorted(tensors):
        a = np.asarray(tensors[name], order="C")
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(model, path) -> None:
    """Write ``model`` — its architecture and every parameter and buffer — to ``path`` (one
    safetensors file; see the module docstring). The model must be built (its sizes known)."""
    from safetensors.numpy import save as st_save

    from .layers.base import Layer

    if not isinstance(model, Layer):
        raise TypeError(f"gpunet.save(model): expected a gpunet layer or model, got {type(model).__name__}")
    unbuilt = model.unbuilt_layers()
    if unbuilt:
        raise ValueError(f"gpunet.save: {', '.join(unbuilt)} infer their sizes from the first input and have seen "
                         "none; run model.build(input_shape) or a forward pass first")
    config = json.dumps(layer_config.to_config(model), separators=(",", ":"))
    shape = getattr(model, "_last_input_shape", None)
    input_shape = json.dumps(None if shape is None else [int(s) for s in shape])
    tensors = {k: np.asarray(backend.to_numpy(v), order="C") for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "gpunet_version": __version__,
            "config": config, "input_shape": input_shape, "training": json.dumps(bool(model.training)),
            "sha256": _digest(config, input_shape, tensors)}
    atomic_write(path, st_save(tensors, metadata=meta))


def _header(blob: bytes, name: str) -> dict:
    if len(blob) < 8:
        raise ModelFileError(f"{name}: {len(blob)} bytes, too short to be a model file (truncated?)")
    n = int.from_bytes(blob[:8], "little")
    if 8 + n > len(blob):
        raise ModelFileError(f"{name}: its header says {n:,} header bytes but the file has {len(blob) - 8:,} after "
                             "the length: truncated")
    try:
        header = json.loads(blob[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{name}: not a model file (its header is not safetensors' JSON)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{name}: not a model file (its header is not safetensors' JSON object)")
    return header


def load(path):
    """The model saved in ``path`` by ``gpunet.save``, built on the active backend with the saved
    weights, buffers and mode. Custom layers must be registered (``@gpunet.layers.register``)
    and their module imported first."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    path = os.fspath(path)
    name = f"model file {path!r}"
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{name} does not exist") from None
    meta = _header(blob, name).get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{name}: a safetensors file without gpunet's architecture (format "
                             f"{meta.get('format')!r}); its weights load into a model you build with "
                             "model.load_state_dict(safetensors.numpy.load_file(path))")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise ModelFileError(f"{name}: format_version {meta.get('format_version')!r} is not a number") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{name}: written by a newer gpunet ({meta.get('gpunet_version')}, format version "
                             f"{version}); this gpunet {__version__} reads format version {FORMAT_VERSION} "
                             "and older: upgrade gpunet")
    try:
        tensors = st_load(blob)
    except SafetensorError as exc:
        raise ModelFileError(f"{name}: its tensors cannot be read ({exc}): truncated or altered") from None
    if meta.get("sha256") != _digest(meta.get("config", ""), meta.get("input_shape", ""), tensors):
        raise ModelFileError(f"{name}: its contents do not match their SHA-256 (altered or damaged)")
    model = layer_config.from_config(json.loads(meta["config"]))
    shape = json.loads(meta["input_shape"])
    if shape is not None:
        model.build(tuple(shape))
    model.load_state_dict(tensors)
    model.train(json.loads(meta.get("training", "true")))
    return model
