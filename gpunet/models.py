"""Ready-made convolutional networks for 28×28 single-channel images (MNIST).

- ``dropout_cnn(p)``: the classic dropout experiment's network, 34,826 parameters.
- ``resnet_small()``: a ResNet of basic blocks (conv-BN-ReLU-conv-BN plus shortcut, then ReLU),
  widths 16-32-64 at 28², 14² and 7², global average pooling, 77,754 parameters.
- ``inception_small()``: a stem and three Inception modules (1×1, 3×3, 5×5 and pool-projection
  branches, concatenated on channels), global average pooling.

Parameter names read like PyTorch's: "0.weight" for the first layer of a Sequential;
"5.block.0.weight" and "5.shortcut.0.weight" inside a Residual at position 5; "7.2.3.weight" for
branch 2, layer 3 of a Concat (Inception module) at position 7. ``print(model)`` shows every
layer's output shape for the 28×28 input these models are built for.
"""
from __future__ import annotations

from .layers import (
    BatchNorm2d, Concat, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, ReLU, Residual,
    Sequential,
)


def dropout_cnn(p: float = 0.5, num_classes: int = 10) -> Sequential:
    """Conv2d(1, 32, 3), ReLU, MaxPool2d(2), Conv2d(32, 64, 3), ReLU, MaxPool2d(2), Flatten,
    Dropout(p), Linear(1600, 10): (N, 1, 28, 28) -> (N, 10) logits; 34,826 parameters for 10 classes."""
    return _for_28x28(Sequential(
        Conv2d(1, 32, 3), ReLU(), MaxPool2d(2),
        Conv2d(32, 64, 3), ReLU(), MaxPool2d(2),
        Flatten(), Dropout(p), Linear(1600, num_classes),
    ), 1)


def _for_28x28(model: Sequential, in_channels: int) -> Sequential:
    model._last_input_shape = (in_channels, 28, 28)  # the input shape print(model) starts from
    return model


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, relu: bool = True) -> list:
    """[Conv2d (no bias: the batch norm's shift replaces it, "same" padding), BatchNorm2d, ReLU]."""
    layers = [Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False), BatchNorm2d(c_out)]
    return layers + [ReLU()] if relu else layers


def basic_block(c_in: int, c_out: int, stride: int = 1) -> Residual:
    """ResNet basic block: y = conv-BN-ReLU-conv-BN(x) + shortcut(x); the shortcut is the identity,
    or a strided 1×1 convolution with batch norm when the shape changes. A ReLU follows outside."""
    block = Sequential(*conv_bn_relu(c_in, c_out, 3, stride), *conv_bn_relu(c_out, c_out, 3, relu=False))
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = Sequential(Conv2d(c_in, c_out, 1, stride=stride, bias=False), BatchNorm2d(c_out))
    return Residual(block, shortcut)


def resnet_small(num_classes: int = 10, in_channels: int = 1, widths=(16, 32, 64)) -> Sequential:
    """Stem conv-BN-ReLU (widths[0], 3×3), one basic block per width (stride 2 from the second on,
    so 28² -> 14² -> 7²), global average pooling, Linear(widths[-1], num_classes)."""
    layers = conv_bn_relu(in_channels, widths[0], 3)
    c = widths[0]
    for i, width in enumerate(widths):
        layers += [basic_block(c, width, stride=1 if i == 0 else 2), ReLU()]
        c = width
    return _for_28x28(Sequential(*layers, GlobalAvgPool2d(), Linear(c, num_classes)), in_channels)


def inception_module(c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int) -> Concat:
    """Inception module: Concat of four branches on channels, c1 + c3 + c5 + cp outputs:
    1×1; 1×1 (c3r) then 3×3; 1×1 (c5r) then 5×5; 3×3 max pooling (stride 1) then 1×1 (cp).
    Every convolution is conv-BN-ReLU with "same" padding."""
    return Concat([
        Sequential(*conv_bn_relu(c_in, c1, 1)),
        Sequential(*conv_bn_relu(c_in, c3r, 1), *conv_bn_relu(c3r, c3, 3)),
        Sequential(*conv_bn_relu(c_in, c5r, 1), *conv_bn_relu(c5r, c5, 5)),
        Sequential(MaxPool2d(3, stride=1, padding=1), *conv_bn_relu(c_in, cp, 1)),
    ], axis=1)


def inception_small(num_classes: int = 10, in_channels: int = 1) -> Sequential:
    """Stem conv-BN-ReLU (32, 3×3) at 28², max pool to 14², two Inception modules (64 and 96
    channels), max pool to 7², a third module (128 channels), global average pooling, Linear."""
    return _for_28x28(Sequential(
        *conv_bn_relu(in_channels, 32, 3), MaxPool2d(2),
        inception_module(32, 16, 16, 24, 8, 12, 12),     # 16 + 24 + 12 + 12 = 64
        inception_module(64, 24, 24, 40, 8, 16, 16),     # 24 + 40 + 16 + 16 = 96
        MaxPool2d(2),
        inception_module(96, 32, 32, 48, 12, 24, 24),    # 32 + 48 + 24 + 24 = 128
        GlobalAvgPool2d(), Linear(128, num_classes),
    ), in_channels)


__all__ = ["dropout_cnn", "resnet_small", "inception_small", "basic_block", "inception_module", "conv_bn_relu"]
