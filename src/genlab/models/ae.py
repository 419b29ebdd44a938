"""Autoencoders: a convolutional AE with a transposed-conv decoder for images, and an MLP AE
for 2-D points. The denoising variant (Vincent et al. 2008) is the same network trained with
the denoising objective in genlab.objectives.ae."""

from __future__ import annotations

import torch
from torch import nn

from genlab.nn.mlp import mlp


class ConvAutoencoder(nn.Module):
    """Images (B, C, H, W) in [-1, 1] -> latent (B, latent) -> reconstruction (B, C, H, W).

    Each encoder level halves the resolution with a stride-2 conv; the decoder mirrors it with
    stride-2 transposed convs (output_padding restores odd sides, e.g. 7 -> 14 -> 28).
    """

    def __init__(self,
                 in_channels: int = 1,                  # image channels
                 size: int = 28,                        # image side (square)
                 widths: tuple[int, ...] = (32, 64),    # channels per stride-2 level
                 latent: int = 32):                     # bottleneck size
        super().__init__()
        sides = [size]
        for _ in widths:
            sides.append((sides[-1] + 1) // 2)  # conv k=3, s=2, p=1: ceil(side / 2)
        assert sides[-1] >= 1, f"too many levels {widths} for size {size}"
        self.sides, self.widths = sides, widths
        chans = [in_channels, *widths]
        enc = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            enc += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                nn.GroupNorm(8 if c_out % 8 == 0 else 1, c_out),
                nn.SiLU(),
            ]
        self.encoder = nn.Sequential(
            *enc, nn.Flatten(), nn.Linear(widths[-1] * sides[-1] ** 2, latent)
        )
        self.project = nn.Linear(latent, widths[-1] * sides[-1] ** 2)
        dec = []
        for i in range(len(widths), 0, -1):
            c_in, c_out = chans[i], chans[i - 1] if i > 1 else widths[0]
            out_pad = sides[i - 1] - (2 * sides[i] - 1)  # makes (side-1)*2 - 2 + 3 + op = target
            dec += [
                nn.SiLU(),
                nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=out_pad),
            ]
        self.decoder = nn.Sequential(
            *dec, nn.SiLU(), nn.Conv2d(widths[0], in_channels, 3, padding=1)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, latent)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(len(z), self.widths[-1], self.sides[-1], self.sides[-1])
        return self.decoder(h)  # (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class MLPAutoencoder(nn.Module):
    """Points (B, D) -> latent (B, latent) -> reconstruction (B, D)."""

    def __init__(self,
                 dim: int = 2,          # data dimension
                 hidden: int = 128,     # hidden width of encoder and decoder
                 depth: int = 3,        # hidden layers per side
                 latent: int = 1):      # bottleneck size (1 for a 2-D set: a curve)
        super().__init__()
        self.encoder = mlp(dim, hidden, depth, latent)
        self.decoder = mlp(latent, hidden, depth, dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


AE_MODELS = {"conv": ConvAutoencoder, "mlp": MLPAutoencoder}


def ae_kwargs(cfg, data_shape: tuple[int, ...]) -> dict:
    """Constructor kwargs for AE_MODELS[cfg.kind] given one example's shape ((C, H, W) or (D,))."""
    if cfg.kind == "conv":
        assert len(data_shape) == 3 and data_shape[1] == data_shape[2], data_shape
        return {"in_channels": data_shape[0], "size": data_shape[1], "widths": tuple(cfg.widths),
                "latent": cfg.latent}
    assert len(data_shape) == 1, data_shape
    return {"dim": data_shape[0], "hidden": cfg.hidden, "depth": cfg.depth, "latent": cfg.latent}
