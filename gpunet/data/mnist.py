"""MNIST: the full set from local IDX files (or downloaded), and a small bundled sample.

The MNIST database of handwritten digits is by Yann LeCun, Corinna Cortes and Christopher J. C.
Burges, distributed under the Creative Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0);
the sample bundled with gpunet (the first 5000 training and 1000 test images) is under the same
licence.

Where the full set is looked for (first rule that applies):
  1. ``mnist(root=...)``: ``<root>/mnist/`` (or the files directly in ``<root>``);
  2. the ``GPUNET_DATA`` environment variable: ``$GPUNET_DATA/mnist/`` (or ``$GPUNET_DATA``);
  3. the cache folder: ``cache_dir=...``, else ``$GPUNET_CACHE``, else ``~/.cache/gpunet``,
     with MNIST in ``<cache>/mnist/``.
Files are the four standard IDX files, gzipped or not (``train-images-idx3-ubyte.gz`` ...).
The SHA-256 of each decompressed file is checked against the published MNIST payload.
``download=True`` fetches missing files into the first folder of that list, from the mirrors in
``MIRRORS``, verifying each before it is given its final name.
"""
from __future__ import annotations

import functools
import http.client
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .idx import GZIP_MAGIC, IDXError, read_idx
from .scaling import to_symmetric, to_unit

SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
# SHA-256 of the decompressed IDX files (the original MNIST payloads).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
SAMPLE_PATH = Path(__file__).with_name("mnist_sample.npz")
LICENSE = "MNIST by Yann LeCun, Corinna Cortes and Christopher J. C. Burges; CC BY-SA 3.0"


def _split_files(split: str):
    if split not in SPLITS:
        raise ValueError(f"mnist(split): expected 'train' or 'test', got {split!r}")
    return SPLITS[split]


def search_dirs(root=None, cache_dir=None) -> list[Path]:
    """The folders searched for the MNIST files, in order; downloads go to the first."""
    if root is None:
        root = os.environ.get("GPUNET_DATA") or None
    if root is not None:
        base = Path(root).expanduser().resolve()
        return [base / "mnist", base]
    cache = cache_dir or os.environ.get("GPUNET_CACHE") or "~/.cache/gpunet"
    return [Path(cache).expanduser().resolve() / "mnist"]


def _find(folder: Path, name: str) -> Path | None:
    for cand in (folder / (name + ".gz"), folder / name):
        if cand.is_file():
            return cand
    return None


def _locate(dirs, names):
    """Paths of all ``names`` in the first folder that holds all of them, else None."""
    for folder in dirs:
        found = [_find(folder, n) for n in names]
        if all(found):
            return found
    return None


def _fetch(url: str, timeout: float = 60.0) -> bytes:
    """The bytes at ``url`` (tests replace this function to serve local bytes)."""
    req = urllib.request.Request(url, headers={"User-Agent": "gpunet"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()


def _download(folder: Path, names) -> None:
    """Fetch each missing file into ``folder``: written to a temporary file, verified, then
    renamed atomically, so a failed or corrupt download leaves nothing behind."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if _find(folder, name):
            continue
        errors = []
        for mirror in MIRRORS:
            url = mirror + name + ".gz"
            print(f"gpunet: downloading {url}", file=sys.stderr)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=name + ".", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    data = _fetch(url)
                    f.write(data)
                read_idx(tmp, SHA256[name])
                os.replace(tmp, folder / (name + ".gz" if data.startswith(GZIP_MAGIC) else name))
                break
            except (OSError, IDXError, http.client.HTTPException) as exc:
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            raise OSError(f"could not download {name} from any mirror:\n  " + "\n  ".join(errors))


@functools.lru_cache(maxsize=4)
def _load_arrays(images_path: str, labels_path: str, stamp, verify: bool):
    """Decoded (images, labels) uint8 arrays, read-only; cached per (paths, mtime/size)."""
    del stamp  # only part of the cache key: a rewritten file is read again
    images_name, labels_name = (Path(p).name.removesuffix(".gz") for p in (images_path, labels_path))
    images = read_idx(images_path, SHA256.get(images_name) if verify else None)
    labels = read_idx(labels_path, SHA256.get(labels_name) if verify else None)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IDXError(f"{images_path}: expected uint8 images of shape (N, 28, 28), "
                       f"got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.shape != (images.shape[0],):
        raise IDXError(f"{labels_path}: expected ({images.shape[0]},) uint8 labels to match "
                       f"{images_path}, got {labels.dtype} {labels.shape}")
    if labels.size and labels.max() > 9:
        raise IDXError(f"{labels_path}: labels must be 0..9, found {int(labels.max())}")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _make_dataset(images, labels, source, normalize, flatten) -> Dataset:
    if normalize is True or normalize == "unit":
        x = to_unit(images)
    elif normalize == "symmetric":
        x = to_symmetric(images)
    elif normalize is None or normalize is False or normalize == "none":
        x = images.astype(np.float32)
    else:
        raise ValueError(f"mnist(normalize): expected 'unit', 'symmetric' or None, got {normalize!r}")
    n = images.shape[0]
    x = x.reshape(n, 784) if flatten else x.reshape(n, 1, 28, 28)
    return Dataset(x, labels.astype(np.int64), source, images)


def _missing_message(split, dirs, names, target) -> str:
    searched = "\n".join(f"  {d / n}[.gz]" for d in dirs for n in names)
    return (
        f"MNIST ({split!r} split) not found. Searched:\n{searched}\n"
        "Point gpunet at a copy of the four MNIST IDX files (gzipped or not):\n"
        "  - set GPUNET_DATA=/path/to/data, with the files in /path/to/data/mnist/, or\n"
        f"  - call gpunet.data.mnist({split!r}, root='/path/to/data'), or\n"
        f"  - call gpunet.data.mnist({split!r}, download=True) to download it (needs internet; "
        f"checksums are verified) into {target}\n"
        f"Offline, gpunet.data.mnist_sample({split!r}) gives the bundled sample "
        "(or pass fallback_to_sample=True)."
    )


_FALLBACK_NOTED: set[str] = set()


def mnist(split: str = "train", root=None, download: bool = False, cache_dir=None,
          normalize="unit", flatten: bool = True, verify: bool = True,
          fallback_to_sample: bool = False) -> Dataset:
    """The full MNIST ``split`` ("train": 60000 images, "test": 10000) as a host ``Dataset``.

    ``x``: float32, (N, 784) (or (N, 1, 28, 28) with ``flatten=False``), scaled by
    ``normalize``: "unit" -> [0, 1] (default), "symmetric" -> [-1, 1], None -> raw 0..255.
    ``y``: int64 (N,). ``images``: the raw uint8 (N, 28, 28). ``source``: the folder read.
    ``verify=False`` skips the checksum check (for a modified copy). When the files are missing:
    ``download=True`` fetches them; else ``fallback_to_sample=True`` returns ``mnist_sample``
    with a note on stderr; else ``FileNotFoundError`` says how to point gpunet at a copy.
    Decoded files are cached in-process, so repeated calls are cheap.
    """
    images_name, labels_name, _ = _split_files(split)
    names = (images_name, labels_name)
    dirs = search_dirs(root, cache_dir)
    paths = _locate(dirs, names)
    if paths is None and download:
        _download(dirs[0], names)
        paths = _locate(dirs, names)
    if paths is None:
        if fallback_to_sample:
            sample = mnist_sample(split, normalize=normalize, flatten=flatten)
            searched = ", ".join(map(str, dirs))
            if searched not in _FALLBACK_NOTED:  # once per process, not once per split
                _FALLBACK_NOTED.add(searched)
                sizes = {k: len(v) for k, v in _load_sample().items() if k.endswith("_labels")}
                print(f"gpunet: full MNIST not found (searched {searched}); using the bundled sample "
                      f"({sizes['train_labels']} training and {sizes['test_labels']} test images)",
                      file=sys.stderr)
            return sample
        raise FileNotFoundError(_missing_message(split, dirs, names, dirs[0]))
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    images, labels = _load_arrays(str(paths[0]), str(paths[1]), stamp, bool(verify))
    return _make_dataset(images, labels, str(paths[0].parent), normalize, flatten)


@functools.lru_cache(maxsize=1)
def _load_sample() -> dict:
    if not SAMPLE_PATH.is_file():
        raise FileNotFoundError(f"the bundled MNIST sample is missing from the installed package: "
                                f"{SAMPLE_PATH} (build it with python -m gpunet.data._build_sample)")
    with np.load(SAMPLE_PATH, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def mnist_sample(split: str = "train", normalize="unit", flatten: bool = True) -> Dataset:
    """The MNIST sample shipped with gpunet: the first 5000 training or first 1000 test images
    of the real set, as a ``Dataset`` like ``mnist`` returns (``source == "bundled sample"``)."""
    _split_files(split)
    s = _load_sample()
    return _make_dataset(s[f"{split}_images"], s[f"{split}_labels"], "bundled sample",
                         normalize, flatten)
