"""`genlab sample` for latent diffusion: EDM-sampled latents decoded by the tokenizer the model
was trained on (models/<tokenizer>.pt)."""

from __future__ import annotations

import torch

from genlab.families.diffusion import N_CLASSES, generate
from genlab.families.diffusion.inference import with_steps
from genlab.families.latent import load, tokenizer_path
from genlab.families.latent.evaluate import _latent_shape
from genlab.inference import Trained, unsupported


def classes(m: Trained) -> int:
    return N_CLASSES if m.cfg.conditional else 0


def bundle(m: Trained) -> dict:
    """Files an MLflow model of m needs besides its checkpoint: the tokenizer it decodes with."""
    return {tokenizer_path(m.cfg): None}


@torch.no_grad()
def sample(m: Trained, n: int, generator: torch.Generator, *, label: int | None = None,
           guidance: float | None = None, steps: int | None = None,
           temperature: float | None = None) -> torch.Tensor:
    unsupported(m, temperature=temperature)
    tok = load(m.cfg, m.device)
    labels = None
    if m.cfg.conditional:
        labels = torch.full((n,), label) if label is not None else torch.arange(n) % N_CLASSES
    z = generate(m.net, with_steps(m.cfg.method, steps), n, _latent_shape(m.net),
                 generator=generator, labels=labels, guidance=guidance, device=m.device)
    return torch.cat([tok.decode_latent(m.net.to_tokenizer(b.to(m.device))).float().cpu()
                      for b in z.split(256)])
