"""A stand-in for the two parts of torchvision that PyTorch's examples/mnist uses, so that the
original script runs unmodified on a machine without torchvision and without network access:
``datasets.MNIST`` reads the IDX files gpunet reads (``$GPUNET_DATA/mnist``), ``transforms``
has ``Compose``, ``ToTensor`` and ``Normalize`` with torchvision's semantics for 28×28 uint8
images."""
from . import datasets, transforms  # noqa: F401
