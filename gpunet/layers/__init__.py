"""Layers and containers."""
from .activations import Flatten, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .containers import Sequential
from .dropout import Dropout
from .normalization import BatchNorm1d, BatchNorm2d
from .linear import Linear

__all__ = ["Layer", "Linear", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softmax", "Flatten",
           "Identity", "Sequential", "BatchNorm1d", "BatchNorm2d", "Dropout"]
