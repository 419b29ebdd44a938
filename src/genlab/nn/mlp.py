"""The plain MLP that point models (autoencoder, VAE) build their encoders and decoders from."""

from __future__ import annotations

from torch import nn


def mlp(d_in: int, hidden: int, depth: int, d_out: int) -> nn.Sequential:
    """depth hidden layers of width `hidden` with SiLU, then a linear output."""
    layers, d = [], d_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    return nn.Sequential(*layers, nn.Linear(d, d_out))
