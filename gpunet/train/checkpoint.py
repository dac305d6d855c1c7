"""Checkpoint files: one self-checking file, written atomically.

``save(path, state)`` writes a nested state (dicts, lists, tuples, numbers, strings, None and
arrays — CuPy arrays are copied to the host, so a GPU checkpoint loads on the CPU and back);
``load(path)`` returns it with NumPy arrays. No pickle: loading a file never runs code.

File layout (little endian)::

    magic   8 bytes   b"GNCKPT\\x00\\x01"
    length  8 bytes   n, the payload size
    payload n bytes   u64 header size h, h bytes of JSON (the tree; arrays as dtype/shape/offset),
                      then the raw array bytes, each starting on a 64-byte boundary
    digest  32 bytes  SHA-256 of everything before it

A file cut at any byte fails the length check and a flipped bit fails the digest, each with a
``CheckpointError`` that says which. Writes are atomic: the bytes go to a temporary file in the
same folder, which is flushed and fsync'ed, renamed over the target with ``os.replace`` and the
folder fsync'ed, so a crash (even SIGKILL) while saving leaves the previous checkpoint intact; the
temporary it leaves names its host and pid, so that a later run can remove it safely (see
``gpunet.train.atomic``). A missing folder is created.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np

from .. import backend
from .atomic import atomic_write
from .history import History

MAGIC = b"GNCKPT\x00\x01"
FORMAT_VERSION = 1
_ALIGN = 64
_HEAD = len(MAGIC) + 8
_DIGEST = 32


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: not a checkpoint, truncated, corrupt, or made for
    another model."""


# ---------------------------------------------------------------------- tree encoding
def _encode(obj, arrays: list):
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and not isinstance(obj, (np.generic,)):
        return obj
    if isinstance(obj, np.generic):
        arrays.append(np.asarray(obj))
        return {"__scalar__": len(arrays) - 1}
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        a = backend.to_numpy(obj)
        if a.dtype.hasobject:
            raise TypeError("checkpoint: object arrays cannot be saved")
        arrays.append(a if a.flags.c_contiguous else a.copy(order="C"))  # keeps 0-d arrays 0-d
        return {"__array__": len(arrays) - 1}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"checkpoint: dict keys must be str or int, got {type(k).__name__}")
            items.append([k, _encode(v, arrays)])
        return {"__dict__": items}
    if isinstance(obj, list):
        return {"__list__": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in obj]}
    raise TypeError(f"checkpoint: cannot save an object of type {type(obj).__name__}")


def _decode(node, arrays: list):
    if not isinstance(node, dict):
        return node
    if "__array__" in node:
        return arrays[node["__array__"]]
    if "__scalar__" in node:
        return arrays[node["__scalar__"]][()]
    if "__dict__" in node:
        return {k: _decode(v, arrays) for k, v in node["__dict__"]}
    if "__list__" in node:
        return [_decode(v, arrays) for v in node["__list__"]]
    if "__tuple__" in node:
        return tuple(_decode(v, arrays) for v in node["__tuple__"])
    raise CheckpointError(f"checkpoint: unknown node {sorted(node)} in the header")


def _round(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def dumps(state) -> bytes:
    """The checkpoint file's bytes for ``state``."""
    arrays: list = []
    tree = _encode(state, arrays)
    specs, offset = [], 0
    for a in arrays:
        specs.append({"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset})
        offset = _round(offset + a.nbytes)
    header = json.dumps({"version": FORMAT_VERSION, "tree": tree, "arrays": specs}).encode()
    start = 8 + len(header)
    pad0 = _round(start) - start
    data = bytearray(_round(start) + offset)
    data[:8] = struct.pack("<Q", len(header))
    data[8:start] = header
    base = start + pad0
    for a, spec in zip(arrays, specs):
        o = base + spec["offset"]
        data[o:o + a.nbytes] = a.tobytes()
    body = MAGIC + struct.pack("<Q", len(data)) + bytes(data)
    return body + hashlib.sha256(body).digest()


def loads(blob: bytes, name: str = "checkpoint"):
    """Parse and verify checkpoint bytes; raise ``CheckpointError`` when they are not a whole,
    intact checkpoint."""
    size = len(blob)
    if blob[:len(MAGIC)] != MAGIC[:min(size, len(MAGIC))]:
        raise CheckpointError(f"{name} is not a gpunet checkpoint (its first bytes are {bytes(blob[:8])!r})")
    if size < _HEAD:
        raise CheckpointError(f"{name} is truncated: {size} bytes, shorter than the {_HEAD}-byte header")
    (n,) = struct.unpack("<Q", blob[len(MAGIC):_HEAD])
    want = _HEAD + n + _DIGEST
    if size < want:
        raise CheckpointError(f"{name} is truncated: {size} bytes of {want} "
                              "(a save was interrupted or the file was cut)")
    if size > want:
        raise CheckpointError(f"{name} is corrupt: {size - want} unexpected bytes after the end")
    body, digest = blob[:_HEAD + n], blob[_HEAD + n:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"{name} is corrupt: its SHA-256 checksum does not match the contents")
    payload = memoryview(body)[_HEAD:]
    (h,) = struct.unpack("<Q", payload[:8])
    try:
        header = json.loads(bytes(payload[8:8 + h]))
    except ValueError as exc:  # cannot happen with a matching digest, unless written by another tool
        raise CheckpointError(f"{name} is corrupt: unreadable header ({exc})") from None
    if header.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{name} has format version {header.get('version')}, this gpunet reads "
                              f"version {FORMAT_VERSION}")
    base = _round(8 + h)
    arrays = []
    for spec in header["arrays"]:
        dt = np.dtype(spec["dtype"])
        count = int(np.prod(spec["shape"], dtype=np.int64))
        o = base + spec["offset"]
        a = np.frombuffer(payload, dtype=dt, count=count, offset=o).reshape(tuple(spec["shape"])).copy()
        arrays.append(a)
    return _decode(header["tree"], arrays)


# ---------------------------------------------------------------------- files
def save(path, state) -> None:
    """Write ``state`` (a nested dict of arrays and plain values) to ``path`` atomically."""
    atomic_write(path, dumps(state))


def load(path):
    """Read a checkpoint written by ``save``; arrays come back as NumPy arrays."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path!r} does not exist") from None
    return loads(blob, name=f"checkpoint {path!r}")


def to_device_tree(tree, device: str):
    """A copy of a loaded tree with every array moved to ``device`` ("cpu" or "gpu")."""
    if isinstance(tree, np.ndarray):
        return backend.to_device(tree, device) if device == "gpu" else tree
    if isinstance(tree, dict):
        return {k: to_device_tree(v, device) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_device_tree(v, device) for v in tree]
    if isinstance(tree, tuple):
        return tuple(to_device_tree(v, device) for v in tree)
    return tree


# ---------------------------------------------------------------------- model identity
def architecture(model) -> list:
    """What a checkpoint must match: each layer's dotted name and type, each parameter's and
    buffer's name and shape."""
    layers = [[name, type(layer).__name__] for name, layer in model.named_layers()]
    arrays = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    return [layers, arrays]


def check_architecture(saved, model, name: str = "checkpoint") -> None:
    """Raise ``CheckpointError`` naming the first difference between a saved architecture and
    ``model``'s."""
    mine = architecture(model)
    saved = [[list(x) for x in part] for part in saved]
    mine = [[list(x) for x in part] for part in mine]
    if saved == mine:
        return
    for what, a, b in (("layer", saved[0], mine[0]), ("array", saved[1], mine[1])):
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if x != y:
                raise CheckpointError(
                    f"{name} was saved from another architecture: {what} #{i} is {_fmt(x)} in the "
                    f"checkpoint but {_fmt(y)} in this model ({len(a)} vs {len(b)} {what}s)"
                )


def _fmt(entry):
    if entry is None:
        return "missing"
    k, v = entry
    return f"{k!r} ({v})" if isinstance(v, str) else f"{k!r} of shape {tuple(v)}"


# ---------------------------------------------------------------------- trainer state
def trainer_state(trainer) -> dict:
    """Everything a resumed run needs: model, layers' random state, optimizer, the host RNG
    (shuffling, seeds), epoch and step, history and callbacks' state (schedules included)."""
    model = trainer.model
    layer_rng = {}
    for name, layer in model.named_layers():
        s = layer.get_rng_state()
        if s is not None:
            layer_rng[name] = s
    return {
        "architecture": architecture(model),
        "device": model.device,
        "model": model.state_dict(),
        "layer_rng": layer_rng,
        "optimizer": {"type": type(trainer.optimizer).__name__, "state": trainer.optimizer.state_dict()},
        "backend_rng": backend.get_rng_state(),
        "epoch": trainer.epoch,
        "step": trainer.global_step,
        "history": trainer.history.to_dict(),
        "callbacks": [{"type": type(cb).__name__, "state": cb.state_dict()} for cb in trainer.callbacks],
    }


def restore_trainer(trainer, state, name: str = "checkpoint") -> dict:
    """Put a Trainer (its model, optimizer, callbacks, epoch, history) and the host RNG in the
    state ``trainer_state`` saved; checks the architecture and the optimizer's type first."""
    if not isinstance(state, dict) or "architecture" not in state:
        raise CheckpointError(f"{name} is not a Trainer checkpoint")
    check_architecture(state["architecture"], trainer.model, name)
    opt_type = state["optimizer"]["type"]
    if opt_type != type(trainer.optimizer).__name__:
        raise CheckpointError(f"{name} holds the state of a {opt_type} optimizer, this Trainer "
                              f"has a {type(trainer.optimizer).__name__}")
    dev = trainer.model.device
    trainer.model.load_state_dict(state["model"])
    layers = dict(trainer.model.named_layers())
    for lname, s in state["layer_rng"].items():
        layers[lname].set_rng_state(s)
    trainer.optimizer.load_state_dict(to_device_tree(state["optimizer"]["state"], dev))
    backend.set_rng_state(state["backend_rng"])
    trainer.epoch, trainer.global_step = int(state["epoch"]), int(state["step"])
    trainer.history = History.from_dict(state["history"])
    saved = list(state["callbacks"])
    for cb in trainer.callbacks:  # match by type, in order of appearance
        for i, entry in enumerate(saved):
            if entry["type"] == type(cb).__name__:
                cb.load_state_dict(entry["state"])
                saved.pop(i)
                break
    return state
