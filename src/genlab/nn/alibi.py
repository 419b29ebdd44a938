"""Attention with linear biases, ALiBi (Press et al. 2022, "Train Short, Test Long", Sec. 3):
no position embedding; each head adds -m_h * (i - j) to the score of query i on key j <= i, a
penalty growing with distance at a head-specific rate, so a score depends on the two positions
only through their difference and nothing is tied to the training length."""

from __future__ import annotations

import math

import torch


def alibi_slopes(heads: int) -> torch.Tensor:
    """The heads' slopes (nh,): for a power of two n, the geometric sequence 2^(-8 i / n),
    i = 1 .. n (8 heads: 1/2, 1/4, ..., 1/256). Otherwise the paper's rule: the slopes of the
    largest power of two below, then every other slope of twice that many, until nh."""
    if heads < 1:
        raise ValueError(f"ALiBi needs at least one head, got heads={heads}")

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    n = 2 ** int(math.floor(math.log2(heads)))
    slopes = geometric(n) + geometric(2 * n)[0::2][:heads - n]
    return torch.tensor(slopes)


def alibi_bias(slopes: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """Additive attention mask (nh, T, start + T) for queries at positions start .. start + T - 1
    over keys 0 .. start + T - 1: -m_h * (i - j) where j <= i, -inf where j > i (causal)."""
    q = torch.arange(start, start + length, device=slopes.device)  # (T,)
    k = torch.arange(start + length, device=slopes.device)  # (T_k,)
    distance = (q[:, None] - k[None, :]).float()  # (T, T_k): i - j
    bias = -slopes[:, None, None] * distance  # (nh, T, T_k)
    return bias.masked_fill(distance < 0, float("-inf"))
