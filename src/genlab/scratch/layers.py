"""Layer objects over the hand-written ops: params + grads, forward caches, manual backprop.

Each layer keeps the cache of its last `forward` and consumes it in `backward(dy) -> dx`,
which *overwrites* (never accumulates) the `.grad` of its parameters. `Sequential` chains
forward left to right and backward right to left (reverse-mode chain rule).
Weights use He initialisation (He et al. 2015): N(0, 2 / fan_in); biases start at zero.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.scratch import ops


@dataclass
class Parameter:
    """A trainable tensor and the gradient written by the last backward pass."""

    value: Tensor
    grad: Tensor | None = None


def he_normal(shape: tuple[int, ...], fan_in: int, generator: torch.Generator, dtype) -> Tensor:
    """N(0, 2 / fan_in) weights (He et al. 2015, Eq. 10)."""
    return torch.randn(shape, generator=generator, dtype=dtype) * (2.0 / fan_in) ** 0.5


class Layer(ABC):
    """Base class: forward(x) -> y caches what backward(dy) -> dx needs."""

    def __init__(self) -> None:
        self._cache = None

    def parameters(self) -> list[Parameter]:
        return []

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """y = layer(x), keeping in self._cache what backward needs."""

    @abstractmethod
    def backward(self, dy: Tensor) -> Tensor:
        """dL/dx from dL/dy (and the parameters' grads, for layers that have them)."""

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def _pop_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called without a forward")
        cache, self._cache = self._cache, None
        return cache


def _bias(channels: int, bias: bool, dtype) -> Parameter | None:
    return Parameter(torch.zeros(channels, dtype=dtype)) if bias else None


class _Conv(Layer):
    """Shared parameter handling of Conv2d and ConvTranspose2d."""

    weight: Parameter
    bias: Parameter | None
    needs_input_grad: bool

    def parameters(self) -> list[Parameter]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def _store(self, dw: Tensor, db: Tensor | None) -> None:
        self.weight.grad = dw
        if self.bias is not None:
            self.bias.grad = db

    def _b(self) -> Tensor | None:
        return None if self.bias is None else self.bias.value


class Conv2d(_Conv):
    """x (B, C, H, W) -> y (B, O, Ho, Wo); weight (O, C/groups, k, k), bias (O,)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        generator: torch.Generator,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        fan_in = in_channels // groups * kernel_size**2
        shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.weight = Parameter(he_normal(shape, fan_in, generator, dtype))
        self.bias = _bias(out_channels, bias, dtype)
        self.hyper = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.needs_input_grad = True  # False for a first layer: skips the col2im of dx

    def forward(self, x: Tensor) -> Tensor:
        y, self._cache = ops.conv2d_forward(x, self.weight.value, self._b(), **self.hyper)
        return y

    def backward(self, dy: Tensor) -> Tensor | None:
        dx, dw, db = ops.conv2d_backward(dy, self._pop_cache(), need_dx=self.needs_input_grad)
        self._store(dw, db)
        return dx


class ConvTranspose2d(_Conv):
    """x (B, C, H, W) -> y (B, O, Ho, Wo); weight (C, O/groups, k, k), bias (O,)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        generator: torch.Generator,
        stride: int = 1,
        padding: int = 0,
        output_padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        # each output pixel sums about C/g * k^2 / s^2 products
        fan_in = max(1, in_channels // groups * kernel_size**2 // stride**2)
        shape = (in_channels, out_channels // groups, kernel_size, kernel_size)
        self.weight = Parameter(he_normal(shape, fan_in, generator, dtype))
        self.bias = _bias(out_channels, bias, dtype)
        self.hyper = dict(
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            groups=groups,
        )
        self.needs_input_grad = True

    def forward(self, x: Tensor) -> Tensor:
        y, self._cache = ops.conv_transpose2d_forward(x, self.weight.value, self._b(), **self.hyper)
        return y

    def backward(self, dy: Tensor) -> Tensor | None:
        cache = self._pop_cache()
        dx, dw, db = ops.conv_transpose2d_backward(dy, cache, need_dx=self.needs_input_grad)
        self._store(dw, db)
        return dx


class Linear(Layer):
    """x (B, I) -> y (B, O); weight (O, I), bias (O,)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        generator: torch.Generator,
        bias: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        shape = (out_features, in_features)
        self.weight = Parameter(he_normal(shape, in_features, generator, dtype))
        self.bias = _bias(out_features, bias, dtype)

    def parameters(self) -> list[Parameter]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def forward(self, x: Tensor) -> Tensor:
        b = None if self.bias is None else self.bias.value
        y, self._cache = ops.linear_forward(x, self.weight.value, b)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        dx, dw, db = ops.linear_backward(dy, self._pop_cache())
        self.weight.grad = dw
        if self.bias is not None:
            self.bias.grad = db
        return dx


class MaxPool2d(Layer):
    """x (B, C, H, W) -> y (B, C, Ho, Wo), max over each window."""

    def __init__(self, kernel_size: int, *, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.hyper = dict(kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        y, self._cache = ops.max_pool2d_forward(x, **self.hyper)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        return ops.max_pool2d_backward(dy, self._pop_cache())


class AvgPool2d(Layer):
    """x (B, C, H, W) -> y (B, C, Ho, Wo), mean over each window."""

    def __init__(self, kernel_size: int, *, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.hyper = dict(kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        y, self._cache = ops.avg_pool2d_forward(x, **self.hyper)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        return ops.avg_pool2d_backward(dy, self._pop_cache())


class ReLU(Layer):
    """Elementwise max(x, 0), any shape."""

    def forward(self, x: Tensor) -> Tensor:
        y, self._cache = ops.relu_forward(x)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        return ops.relu_backward(dy, self._pop_cache())


class Sigmoid(Layer):
    """Elementwise 1 / (1 + exp(-x)), any shape."""

    def forward(self, x: Tensor) -> Tensor:
        y, self._cache = ops.sigmoid_forward(x)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        return ops.sigmoid_backward(dy, self._pop_cache())


class Flatten(Layer):
    """x (B, C, H, W) -> (B, C*H*W) in (C, H, W) order, like torch.nn.Flatten."""

    def forward(self, x: Tensor) -> Tensor:
        self._cache = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: Tensor) -> Tensor:
        shape = self._pop_cache()
        ops.check_shape(dy, (shape[0], math.prod(shape[1:])), "dy")
        return dy.reshape(shape)


class Sequential(Layer):
    """Chain of layers: forward left to right, backward right to left."""

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        self.layers = list(layers)

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: Tensor) -> Tensor | None:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy
