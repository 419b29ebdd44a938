"""Autoencoder evaluation: reconstruction MSE / PSNR (clean and at each input-noise level) and
generation by decoding a Gaussian fitted to the training latents."""

from __future__ import annotations

import torch

from genlab.metrics.image import mse_psnr
from genlab.metrics.toy import fit_gaussian_sampler


@torch.no_grad()
def reconstruct(net, x: torch.Tensor, sigma: float, generator: torch.Generator,
                batch: int = 500) -> torch.Tensor:
    """net(x + sigma * eps) in batches; x (N, ...) on the CPU, result on the CPU."""
    dev = next(net.parameters()).device
    out = []
    for chunk in x.split(batch):
        noisy = chunk + sigma * torch.randn(chunk.shape, generator=generator)
        out.append(net(noisy.to(dev)).float().cpu())
    return torch.cat(out)


def reconstruction_metrics(net, x: torch.Tensor, noise_levels: tuple[float, ...],
                           generator: torch.Generator, batch: int = 500,
                           image: bool = True) -> dict[str, float]:
    """recon_mse / recon_psnr on clean inputs and at every input-noise std (key suffix _s<σ>)."""
    out = {}
    for sigma in (0.0, *noise_levels):
        y = reconstruct(net, x, sigma, generator, batch)
        mse, psnr = mse_psnr(y, x) if image else (((y - x) ** 2).flatten(1).mean(1), None)
        suffix = "" if sigma == 0 else f"_s{sigma:g}"
        out[f"recon_mse{suffix}"] = mse.mean().item()
        if psnr is not None:
            out[f"recon_psnr{suffix}"] = psnr.mean().item()
    return out


@torch.no_grad()
def latent_gaussian_samples(net, x_train: torch.Tensor, n: int, generator: torch.Generator,
                            batch: int = 500) -> torch.Tensor:
    """Decode n draws of N(mean, cov) fitted to the encoder's training latents (the AE as a
    crude generative model)."""
    dev = next(net.parameters()).device
    z = torch.cat([net.encode(c.to(dev)).float().cpu() for c in x_train.split(batch)])
    z_new = fit_gaussian_sampler(z)(n, generator).float()
    return torch.cat([net.decode(c.to(dev)).float().cpu() for c in z_new.split(batch)])
