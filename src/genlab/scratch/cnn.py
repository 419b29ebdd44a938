"""From-scratch model builders: a LeNet-style CNN classifier and a strided conv autoencoder.

Both are `Sequential`s of the hand-written layers (manual backward, no autograd).
"""

from __future__ import annotations

import torch

from genlab.scratch.layers import (
    Conv2d,
    ConvTranspose2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    Sigmoid,
)


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")


def build_classifier(
    *,
    width: int,
    generator: torch.Generator,
    image_size: int = 28,
    in_channels: int = 1,
    num_classes: int = 10,
    hidden: int = 128,
    dtype: torch.dtype = torch.float32,
) -> Sequential:
    """(B, 1, 28, 28) -> logits (B, 10) via two conv3x3-maxpool2-ReLU blocks and an MLP head.

    ReLU after the pool equals ReLU before it (max commutes with the monotone ReLU) and
    touches 4x fewer pixels. Shapes: (B, 1, 28, 28) -> (B, w, 14, 14) -> (B, 2w, 7, 7)
    -> (B, 2w*49) -> (B, hidden) -> (B, 10).
    """
    _check_positive(width=width, hidden=hidden, num_classes=num_classes)
    if image_size % 4:
        raise ValueError(f"image_size: must be divisible by 4, got {image_size}")
    kw = dict(generator=generator, dtype=dtype)
    first = Conv2d(in_channels, width, 3, padding=1, **kw)
    first.needs_input_grad = False  # nothing upstream: skip dx
    flat = 2 * width * (image_size // 4) ** 2
    return Sequential(
        first, MaxPool2d(2), ReLU(),  # (B, w, H/2, W/2)
        Conv2d(width, 2 * width, 3, padding=1, **kw), MaxPool2d(2), ReLU(),  # (B, 2w, H/4, W/4)
        Flatten(),  # (B, 2w * H/4 * W/4)
        Linear(flat, hidden, **kw), ReLU(),
        Linear(hidden, num_classes, **kw),  # (B, num_classes) logits
    )  # fmt: skip


def build_autoencoder(
    *,
    width: int,
    latent_channels: int,
    generator: torch.Generator,
    in_channels: int = 1,
    dtype: torch.dtype = torch.float32,
) -> tuple[Sequential, Sequential]:
    """(encoder, decoder): stride-2 convs down, stride-2 transposed convs up, sigmoid output.

    Shapes: (B, 1, 28, 28) -> (B, w, 14, 14) -> z (B, latent, 7, 7) -> (B, w, 14, 14)
    -> (B, 1, 28, 28) in (0, 1).
    """
    _check_positive(width=width, latent_channels=latent_channels)
    kw = dict(generator=generator, dtype=dtype)
    up = dict(stride=2, padding=1, output_padding=1, **kw)  # doubles H and W exactly
    first = Conv2d(in_channels, width, 3, stride=2, padding=1, **kw)
    first.needs_input_grad = False
    encoder = Sequential(
        first, ReLU(),  # (B, w, H/2, W/2)
        Conv2d(width, latent_channels, 3, stride=2, padding=1, **kw),  # (B, latent, H/4, W/4)
    )  # fmt: skip
    decoder = Sequential(
        ConvTranspose2d(latent_channels, width, 3, **up), ReLU(),  # (B, w, H/2, W/2)
        ConvTranspose2d(width, in_channels, 3, **up), Sigmoid(),  # (B, 1, H, W)
    )  # fmt: skip
    return encoder, decoder
