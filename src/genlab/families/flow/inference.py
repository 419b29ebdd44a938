"""`genlab sample` for RealNVP: x = f^-1(z), z ~ N(0, T^2 I)."""

from __future__ import annotations

import torch

from genlab.config import is_toy
from genlab.families.flow import generate
from genlab.inference import Trained, unsupported


def sample(m: Trained, n: int, generator: torch.Generator, *, label: int | None = None,
           guidance: float | None = None, steps: int | None = None,
           temperature: float | None = None) -> torch.Tensor:
    unsupported(m, **{"class": label}, guidance=guidance, steps=steps)
    t = m.cfg.temperatures[0] if temperature is None else temperature
    alpha = None if is_toy(m.cfg.dataset) else m.cfg.alpha
    with torch.no_grad():
        return generate(m.net, n, t, generator=generator, alpha=alpha)
