"""Multi-head scaled dot-product self-attention (Vaswani et al. 2017, Eq. 1): a spatial block
over the H*W positions of a feature map (as in DDPM / ADM U-Nets) and a sequence version with
optional causal masking (GPT-style), both on torch's fused scaled_dot_product_attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.blocks import group_norm, is_channels_last


def _head_dim(width: int, heads: int, names: tuple[str, str]) -> int:
    if heads <= 0 or width % heads:
        raise ValueError(f"{names[1]}={heads} must be > 0 and divide {names[0]}={width}")
    return width // heads


class SpatialSelfAttention(nn.Module):
    """x (B, C, H, W) -> x + proj(MHA(GroupNorm(x))) over the H*W positions.

    The qkv projection is a 1x1 conv (C -> 3C, channels laid out [q | k | v], each split
    head-major like torch.nn.MultiheadAttention); the output projection starts at zero so the
    block is the identity at initialisation. nhwc_paths: an NHWC x is split into heads
    through token-major views and its GroupNorm keeps NHWC (see genlab.nn.blocks); otherwise
    the plain head-major reshapes.
    """

    def __init__(self,
                 channels: int,              # C of the feature map
                 num_heads: int = 1,         # attention heads; must divide channels
                 eps: float = 1e-6,          # GroupNorm epsilon
                 nhwc_paths: bool = False):  # NHWC-keeping norm and head split for NHWC x
        super().__init__()
        self.num_heads, self.nhwc_paths = num_heads, nhwc_paths
        self.head_dim = _head_dim(channels, num_heads, ("channels", "num_heads"))
        self.norm = group_norm(channels, eps=eps, nhwc_paths=nhwc_paths)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.proj = nn.Conv2d(channels, channels, kernel_size=1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x))  # (B, 3C, H, W), channels [q | k | v], each head-major
        nhwc = self.nhwc_paths and is_channels_last(qkv)
        if nhwc:
            # NHWC (the GPU layout): token-major views, (B, HW, 3, heads, d), and the output
            # goes back as an NHWC view too, so neither pass hands the 1x1 convs an NCHW
            # tensor to convert (the head-major reshapes gave their backwards NCHW grads).
            qkv = qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, HW, d)
        else:
            qkv = qkv.reshape(b, 3, self.num_heads, self.head_dim, h * w)
            q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, HW, d)
        out = F.scaled_dot_product_attention(q, k, v)  # Eq. 1: softmax(QK^T / sqrt(d)) V
        if nhwc:
            out = out.transpose(1, 2).reshape(b, h, w, c).permute(0, 3, 1, 2)  # (B, C, H, W)
        else:
            out = out.transpose(-1, -2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj(out)


class SelfAttention(nn.Module):
    """x (B, T, D) -> proj(MHA(x)) (B, T, D); with causal=True position t sees only <= t.

    No norm or residual: transformer blocks wrap it (pre-norm + residual) themselves. Weights
    are laid out like torch.nn.MultiheadAttention (qkv.weight == in_proj_weight).
    """

    def __init__(self,
                 dim: int,                  # model width D
                 heads: int = 1,            # attention heads; must divide dim
                 causal: bool = False,      # mask future positions (autoregressive models)
                 dropout: float = 0.0):     # dropout on attention weights, training only
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")
        self.heads, self.head_dim = heads, _head_dim(dim, heads, ("dim", "heads"))
        self.causal, self.dropout = causal, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, T, d)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))  # (B, T, D)
