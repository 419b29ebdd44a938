"""The `concepts` section of params.yaml: sizes of the first-principles demonstrations."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import Check, at_least, between, knob, positive


@dataclass(frozen=True)
class ConceptsConfig:
    dims: tuple[int, ...] = knob(
        factory=lambda: (2, 5), doc="optimiser test-function dimensions",
        check=Check(lambda d: len(d) > 0 and all(x >= 2 for x in d),
                    "must be a non-empty list of ints >= 2"))
    budget: int = knob(6000, doc="function evaluations per optimiser, function and dimension",
                       check=at_least(50))
    n_chains: int = knob(64, doc="parallel MCMC chains per sampler", check=positive)
    n_steps: int = knob(1000, doc="MCMC steps (first 20% burn-in)", check=at_least(10))
    ksg_n: int = knob(1000, doc="KSG mutual-information sample size (O(n^2) memory)",
                      check=between(10, 5000))
    ksg_k: int = knob(3, doc="KSG neighbours", check=positive)
    n_rho: int = knob(8, doc="correlations on the KSG-vs-truth curve", check=at_least(2))
    sde_particles: int = knob(5000, doc="particles of the diffusion-process demos",
                              check=at_least(10))
    sde_steps: int = knob(500, doc="Euler-Maruyama steps", check=at_least(10))
