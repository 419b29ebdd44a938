"""`genlab sample` for the token prior: class-conditional code grids drawn with the KV cache
(classifier-free guidance w), decoded by the tokenizer's decoder."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.families.prior.evaluate import load, sample_grids
from genlab.inference import Trained, UsageError


def classes(m: Trained) -> int:
    return m.net.classes


def bundle(m: Trained) -> dict:
    """Files an MLflow model of m needs besides its checkpoint: the tokenizer it decodes with."""
    return {Path(f"models/{m.cfg.tokenizer}.pt"): None}


@torch.no_grad()
def sample(m: Trained, n: int, generator: torch.Generator, *, label: int | None = None,
           guidance: float | None = None, steps: int | None = None,
           temperature: float | None = None) -> torch.Tensor:
    if steps is not None:
        raise UsageError(f"model {m.name!r} draws one token per step ({m.net.length} per "
                         "image): --steps does not apply")
    tok = load(m.cfg, m.device)
    labels = torch.full((n,), label) if label is not None else torch.arange(n) % m.net.classes
    t = m.cfg.temperature if temperature is None else temperature
    grids = sample_grids(m.net, labels, guidance or 0.0, temperature=t, top_k=m.cfg.top_k,
                         top_p=m.cfg.top_p, generator=generator, batch_size=256,
                         device=m.device)
    return torch.cat([tok.decode_tokens(g.to(m.device)).float().cpu() for g in grids.split(256)])
