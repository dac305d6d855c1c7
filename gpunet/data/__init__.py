"""Datasets (MNIST: full set, cache, download, bundled sample), input scaling and batching.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J. C. Burges, under CC BY-SA 3.0.
"""
from .batching import batches, num_batches
from .dataset import Dataset
from .idx import IDXError, read_idx, write_idx
from .mnist import mnist, mnist_sample
from .scaling import Standardizer, to_symmetric, to_unit

__all__ = [
    "mnist", "mnist_sample", "Dataset", "read_idx", "write_idx", "IDXError",
    "batches", "num_batches", "to_unit", "to_symmetric", "Standardizer",
]
