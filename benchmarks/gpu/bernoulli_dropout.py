"""Dropout (Srivastava et al. 2014) with its keep-mask drawn by a kernel of its own: the
bench_unet.py variant compiled-bernoulli-mask.

Under torch.compile, inductor fuses dropout into the surrounding pointwise kernel and draws
the mask there with Triton's Philox generator. Before torch 2.13 that is one Philox-4x32-10
call (ten rounds of 32-bit multiplies) per element, three of its four outputs unused. At the
CIFAR-10 U-Net's sizes (1.8 G dropout elements per training step at batch 512) that is a lot
of integer arithmetic inside kernels that should be limited by memory. Here the mask comes
from torch's own bernoulli_ (on CUDA four values per Philox call) behind an opaque operator,
and the fused kernel only reads it (1 byte per element).

Whether that is faster on a GPU is what the variant measures, so the training code does not
use it: bernoulli_dropout_forward replaces nn.Dropout.forward only while the variant runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@torch.library.custom_op("genlab_bench::keep_mask", mutates_args=(),
                         tags=(torch.Tag.nondeterministic_seeded,))
def keep_mask(size: Sequence[int], stride: Sequence[int], p: float,
              device: torch.device) -> torch.Tensor:
    """uint8 tensor of the given size and strides (so NHWC for an NHWC activation), each
    entry 1 with probability 1 - p, from torch's generator for device.

    Opaque to torch.compile, which calls it as it is. It takes the activation's shape, not
    the activation, so the fused kernel that computes the activation is not split around it.
    The tag marks it random for aot_autograd's partitioner, so the backward reuses the
    forward's (saved) mask instead of drawing a new one."""
    return torch.empty_strided(size, stride, dtype=torch.uint8, device=device) \
        .bernoulli_(1.0 - p)


@keep_mask.register_fake
def _keep_mask_fake(size, stride, p, device):
    return torch.empty_strided(size, stride, dtype=torch.uint8, device=device)


def bernoulli_dropout_forward(self: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    """nn.Dropout.forward with the mask from keep_mask: y = x * mask / (1 - p) in training
    (the same distribution as torch's dropout), x itself in eval mode or at p = 0."""
    if not self.training or self.p == 0.0:
        return x
    if self.inplace:  # not used by genlab's networks; torch's own path keeps it correct
        return F.dropout(x, self.p, True, True)
    mask = keep_mask(x.shape, x.stride(), self.p, x.device)
    return x * mask * (1.0 / (1.0 - self.p))
