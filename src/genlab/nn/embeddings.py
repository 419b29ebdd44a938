"""Embeddings of a scalar noise level / time and of class labels: sinusoidal positional features
(Vaswani et al. 2017, as used by DDPM, Ho et al. 2020) and random Fourier features (Tancik et
al. 2020, as used by NCSN++ in Song et al. 2021 and EDM in Karras et al. 2022)."""

from __future__ import annotations

import math

import torch
from torch import nn


def _check_even(dim: int) -> None:
    if dim <= 0 or dim % 2:
        raise ValueError(f"dim must be a positive even integer, got dim={dim}")


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_positions: float = 10_000.0
                         ) -> torch.Tensor:
    """(B,) float -> (B, dim) = [sin(x w_i), cos(x w_i)], w_i = max_positions^(-i / (dim/2)).

    The frequencies go geometrically from 1 down to ~1/max_positions (Vaswani et al. 2017, Sec.
    3.5), so emb(0) = [0, ..., 0, 1, ..., 1] and <emb(a), emb(b)> depends only on a - b.
    """
    _check_even(dim)
    if max_positions <= 1:
        raise ValueError(f"max_positions must be > 1, got max_positions={max_positions}")
    half = dim // 2
    i = torch.arange(half, device=x.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_positions) * i / half)  # (half,)
    angles = x.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


class PositionalEmbedding(nn.Module):
    """(B,) float -> (B, dim): sinusoidal features of scale * x (scale 1000 for t in [0, 1])."""

    def __init__(self,
                 dim: int,                          # output features (even)
                 max_positions: float = 10_000.0,   # 1 / lowest frequency
                 scale: float = 1.0):               # multiplies x before the embedding
        super().__init__()
        _check_even(dim)
        self.dim, self.max_positions, self.scale = dim, max_positions, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sinusoidal_embedding(x * self.scale, self.dim, self.max_positions)


class FourierEmbedding(nn.Module):
    """(B,) float -> (B, dim) = [sin(2 pi f_i x), cos(2 pi f_i x)] with fixed f_i ~ N(0, scale^2).

    The frequencies are a buffer (saved with the state dict, never trained), drawn from the
    injected `generator` (Tancik et al. 2020; Song et al. 2021, NCSN++ "Gaussian Fourier").
    """

    def __init__(self,
                 dim: int,                                      # output features (even)
                 scale: float = 16.0,                           # std of the random frequencies
                 generator: torch.Generator | None = None):     # source of the frequencies
        super().__init__()
        _check_even(dim)
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got scale={scale}")
        self.register_buffer("freqs", torch.randn(dim // 2, generator=generator) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * x.float()[:, None] * self.freqs[None, :]  # (B, dim/2)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


def noise_embedding(kind: str, dim: int) -> nn.Module:
    """'positional' (DDPM / EDM DDPM++) or 'fourier' (NCSN++) embedding of the noise label."""
    if kind == "positional":
        return PositionalEmbedding(dim)
    if kind == "fourier":
        return FourierEmbedding(dim)
    raise ValueError(f"embedding must be 'positional' or 'fourier', got embedding={kind!r}")


class LabelEmbedding(nn.Module):
    """Class labels (B,) int64 in [0, label_dim), or -1 = "no label" -> (B, dim).

    Rows with label -1 get a zero vector, which is exactly what `labels=None` gives the whole
    batch; this is the "null label" of classifier-free guidance (Ho & Salimans 2022).
    """

    def __init__(self, label_dim: int, dim: int):
        super().__init__()
        if label_dim <= 0:
            raise ValueError(f"label_dim must be > 0, got label_dim={label_dim}")
        self.table = nn.Embedding(label_dim, dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        keep = (labels >= 0).unsqueeze(1)  # (B, 1); no data-dependent Python branching
        return self.table(labels.clamp(min=0)) * keep  # (B, dim)
