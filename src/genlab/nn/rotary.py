"""Rotary position embedding, RoPE (Su et al. 2021, "RoFormer", Eq. 34): each pair of query /
key channels is rotated by an angle proportional to the position, so a query-key dot product
depends on the two positions only through their difference."""

from __future__ import annotations

import torch


def rope_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """theta_{t,i} = t * base^(-2i / head_dim) for i < head_dim / 2: (T, head_dim / 2) float32.

    positions: (T,) absolute positions (an offset range when decoding with a KV cache)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head size, got head_dim={head_dim}")
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device,
                                      dtype=torch.float32) / head_dim)  # (hs/2,)
    return positions.float()[:, None] * inv_freq[None, :]  # (T, hs/2)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs (x_{2i}, x_{2i+1}) of x (B, nh, T, hs) by angles
    (T, hs/2) (Eq. 34); computed in float32, returned in x's dtype."""
    x2 = x.float().unflatten(-1, (-1, 2))  # (B, nh, T, hs/2, 2)
    x_even, x_odd = x2.unbind(-1)  # each (B, nh, T, hs/2)
    cos, sin = angles.cos(), angles.sin()  # (T, hs/2), broadcast over (B, nh)
    out = torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)  # (B, nh, T, hs)
