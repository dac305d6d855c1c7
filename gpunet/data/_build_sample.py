"""Build the bundled MNIST sample (gpunet/data/mnist_sample.npz) from the full IDX files.

    python -m gpunet.data._build_sample --from ../shared/data/mnist

Takes the first ``--train`` (5000) training and first ``--test`` (1000) test images and labels,
verifies the source files' checksums, and writes them with ``np.savez_compressed`` under the keys
``train_images`` (N, 28, 28) uint8, ``train_labels`` (N,) uint8, ``test_images``, ``test_labels``.
MNIST is by LeCun, Cortes and Burges, CC BY-SA 3.0; the sample is under the same licence.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .mnist import SAMPLE_PATH, SHA256, SPLITS, _find
from .idx import read_idx


def build(src: Path, out: Path = SAMPLE_PATH, n_train: int = 5000, n_test: int = 1000) -> dict:
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name, _ = SPLITS[split]
        for key, name in (("images", images_name), ("labels", labels_name)):
            path = _find(src, name)
            if path is None:
                raise FileNotFoundError(f"{src / name}[.gz] not found")
            arrays[f"{split}_{key}"] = np.ascontiguousarray(read_idx(path, SHA256[name])[:n])
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return arrays


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="src", required=True, type=Path,
                   help="folder holding the four MNIST IDX files (gzipped or not)")
    p.add_argument("--out", type=Path, default=SAMPLE_PATH)
    p.add_argument("--train", type=int, default=5000)
    p.add_argument("--test", type=int, default=1000)
    a = p.parse_args(argv)
    arrays = build(a.src, a.out, a.train, a.test)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.2f} MB)")
    for split in ("train", "test"):
        counts = np.bincount(arrays[f"{split}_labels"], minlength=10)
        print(f"  {split}: {len(arrays[f'{split}_labels'])} images, per class {counts.tolist()} "
              f"(min/max {counts.min() / counts.max():.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
