"""`genlab sample` / `genlab interpolate` for the VAE: means of p(x | z) for z = T eps from
the prior, and decoded straight lines between the posterior means of test-image pairs."""

from __future__ import annotations

import torch

from genlab.config import is_toy
from genlab.families.vae.evaluate import decode, interpolation_grid
from genlab.inference import Trained, test_pairs, unsupported


@torch.no_grad()
def sample(m: Trained, n: int, generator: torch.Generator, *, label: int | None = None,
           guidance: float | None = None, steps: int | None = None,
           temperature: float | None = None) -> torch.Tensor:
    unsupported(m, **{"class": label}, guidance=guidance, steps=steps)
    t = m.cfg.temperatures[0] if temperature is None else temperature
    z = t * torch.randn(n, m.net.latent, generator=generator, device=generator.device)
    return decode(m.net, z, 500, m.device)


@torch.no_grad()
def interpolate(m: Trained, rows: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    if is_toy(m.cfg.dataset):
        unsupported(m, interpolate=True)
    return interpolation_grid(m.net, test_pairs(m.cfg.dataset, rows, generator), steps, 500,
                              m.device)
