"""A stand-in for ``tensorflow`` that hands out Keras 3 (on its PyTorch backend, KERAS_BACKEND=torch)
as ``tensorflow.keras``, with ``keras.datasets.mnist.load_data`` reading the IDX files gpunet reads
($GPUNET_DATA/mnist) instead of downloading: so that keras-io's mnist_convnet.py runs unmodified
without TensorFlow and without network access."""
import sys

import keras

import gpunet.data


def _load_data(path="mnist.npz"):
    train, test = gpunet.data.mnist("train"), gpunet.data.mnist("test")
    return (train.images, train.y.astype("uint8")), (test.images, test.y.astype("uint8"))


keras.datasets.mnist.load_data = _load_data
sys.modules[__name__ + ".keras"] = keras
