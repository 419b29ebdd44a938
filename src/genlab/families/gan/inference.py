"""`genlab sample` for the GAN: the generator on z ~ N(0, T^2 I)."""

from __future__ import annotations

import torch

from genlab.families.gan import generate
from genlab.inference import Trained, unsupported


def sample(m: Trained, n: int, generator: torch.Generator, *, label: int | None = None,
           guidance: float | None = None, steps: int | None = None,
           temperature: float | None = None) -> torch.Tensor:
    unsupported(m, **{"class": label}, guidance=guidance, steps=steps)
    t = m.cfg.temperatures[0] if temperature is None else temperature
    return generate(m.net, n, generator=generator, temperature=t, device=m.device)
