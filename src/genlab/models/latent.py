"""Latent diffusion (Rombach et al. 2022) as a thin wrapper: the diffusion family's EDM denoiser,
unchanged, learns a pretrained tokenizer's latents instead of pixels.

Training sees z / scale, the tokenizer's latents divided by their standard deviation over the
training set (unit variance, so EDM's sigma_data = 1 fits them); `scale` is a buffer of the
wrapper, saved beside the weights. Sampling draws z / scale with the pixel family's sampler;
`to_tokenizer` multiplies the scale back before the tokenizer's decoder turns z into images.
Nothing here branches inside the U-Net (STYLE rule 7): encode and decode stay the tokenizer's.
"""

from __future__ import annotations

import torch
from torch import nn


class LatentDenoiser(nn.Module):
    """D(z; sigma, y) on unit-variance latents: the wrapped denoiser plus the latent scale."""

    def __init__(self, denoiser: nn.Module, scale: float):
        super().__init__()
        self.denoiser = denoiser
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, z: torch.Tensor, sigma, class_labels=None) -> torch.Tensor:
        return self.denoiser(z, sigma, class_labels)  # (B, C, h, w)

    def to_tokenizer(self, z: torch.Tensor) -> torch.Tensor:
        """Unit-variance latents (B, C, h, w) -> the tokenizer's latent units."""
        return z * self.scale


@torch.no_grad()
def encode_all(encode, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """encode(x) over float images (N, C, H, W) in batches -> latents (N, C', h, w) on the CPU."""
    return torch.cat([encode(images[i:i + batch]).float().cpu()
                      for i in range(0, len(images), batch)])


@torch.no_grad()
def decode_all(decode, latents: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """decode(z) over latents (N, C', h, w) in batches -> images (N, C, H, W) in [-1, 1], CPU."""
    return torch.cat([decode(latents[i:i + batch]).float().clamp(-1, 1).cpu()
                      for i in range(0, len(latents), batch)])
