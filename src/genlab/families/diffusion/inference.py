"""`genlab sample` for the diffusion family: the method's sampler, optionally class-guided,
with the sampler's step count overridable (EDM num_steps, DDPM/DDIM steps, NCSN noise levels)."""

from __future__ import annotations

import dataclasses

import torch

from genlab.families.diffusion import N_CLASSES, generate
from genlab.inference import Trained, example_shape, unsupported

STEP_KNOB = {"edm": "num_steps", "ddpm": "ddim_steps", "ncsn": "num_scales"}


def classes(m: Trained) -> int:
    return N_CLASSES if m.cfg.conditional else 0


def with_steps(method, steps: int | None):
    """The method's config with its sampler step count replaced (None: as trained)."""
    if steps is None:
        return method
    if method.kind == "ddpm" and method.sampler != "ddim":
        method = dataclasses.replace(method, sampler="ddim")  # ancestral runs all T steps
    return dataclasses.replace(method, **{STEP_KNOB[method.kind]: steps})


def sample(m: Trained, n: int, generator: torch.Generator, *, label: int | None = None,
           guidance: float | None = None, steps: int | None = None,
           temperature: float | None = None) -> torch.Tensor:
    unsupported(m, temperature=temperature)
    labels = None
    if m.cfg.conditional:  # unlabelled requests cycle through the classes
        labels = torch.full((n,), label) if label is not None else torch.arange(n) % N_CLASSES
    return generate(m.net, with_steps(m.cfg.method, steps), n, example_shape(m.cfg.dataset),
                    generator=generator, labels=labels, guidance=guidance, device=m.device)
