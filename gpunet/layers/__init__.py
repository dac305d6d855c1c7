"""Layers and containers."""
from .activations import Flatten, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .config import register
from .blocks import Concat, Residual
from .conv import Conv2d
from .containers import LayerDict, LayerList, Sequential
from .dropout import Dropout, Dropout2d
from .layernorm import GroupNorm, LayerNorm
from .normalization import BatchNorm1d, BatchNorm2d
from .linear import Linear
from .weight_norm import WeightNorm
from .pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d

__all__ = ["Layer", "Linear", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softmax", "Flatten",
           "Identity", "Sequential", "LayerList", "LayerDict", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm",
           "Dropout", "Dropout2d"]
__all__ += ["register", "WeightNorm", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Residual", "Concat"]
