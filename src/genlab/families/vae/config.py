"""The `vae` family's params section: one model per key (architecture, likelihood, objective,
likelihood-bound and sample settings), typed and validated."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import (
    LoopConfig,
    datasets,
    is_toy,
    items,
    knob,
    non_negative,
    one_of,
    positive,
)

# model.kind -> the likelihoods its data can take
LIKELIHOODS = {"conv": ("bernoulli", "logistic"), "mlp": ("gaussian",)}


@dataclass(frozen=True)
class VAEModelConfig:
    kind: str = knob("conv", doc="conv: images (transposed-conv decoder); mlp: 2-D points",
                     check=one_of("conv", "mlp"))
    widths: tuple[int, ...] = knob(factory=lambda: (16, 32), doc="conv channels per stride-2 "
                                   "level (encoder; the decoder mirrors them)",
                                   check=items(positive))
    hidden: int = knob(256, doc="MLP hidden width", check=positive)
    depth: int = knob(3, doc="MLP hidden layers per side", check=positive)
    latent: int = knob(16, doc="dimensions of z", check=positive)
    likelihood: str = knob(
        "logistic", check=one_of("bernoulli", "logistic", "gaussian"),
        doc="p(x | z). Images: bernoulli (pixels as probabilities in [0, 1]; nats only) or "
        "logistic (discretised over the 256 levels: a pmf, so bits/dim). Points: gaussian")
    logistic_scale: str = knob("per_pixel", doc="logistic: log-scale per pixel from the "
                               "decoder, or one shared learned scalar",
                               check=one_of("per_pixel", "shared"))
    variance: str = knob("learned", doc="gaussian: sigma(z) from the decoder (learned), one "
                         "learned sigma per dimension (shared) or sigma fixed",
                         check=one_of("learned", "shared", "fixed"))
    sigma: float = knob(0.1, doc="gaussian: the fixed std, or the shared std's start",
                        check=positive)
    sigma_min: float = knob(1e-3, doc="gaussian: floor of a learned std (keeps the density "
                            "bounded)", check=non_negative)

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS[self.kind]:
            raise ValueError(f"likelihood {self.likelihood!r} does not fit kind {self.kind!r} "
                             f"(it takes {list(LIKELIHOODS[self.kind])})")
        if self.sigma <= self.sigma_min:
            raise ValueError(f"sigma ({self.sigma}) must be > sigma_min ({self.sigma_min})")


@dataclass(frozen=True)
class VAEObjectiveConfig:
    beta: float = knob(1.0, doc="KL weight after the warm-up (1: the ELBO)", check=non_negative)
    warmup_steps: int = knob(0, doc="linear KL warm-up 0 -> beta over these steps (0: off)",
                             check=non_negative)
    free_bits: float = knob(0.0, doc="nats per latent dimension below which its batch-mean KL "
                            "is not pushed down (Kingma et al. 2016; 0: off)",
                            check=non_negative)


@dataclass(frozen=True, kw_only=True)  # dataset is required: the stages depend on it
class VAEConfig(LoopConfig):
    dataset: str = knob(doc="fashion_mnist or toy2d/<name> (data/processed/<dataset>/)",
                        check=datasets(images=("fashion_mnist",)))
    model: VAEModelConfig = knob(factory=VAEModelConfig, doc="architecture and p(x | z)")
    objective: VAEObjectiveConfig = knob(factory=VAEObjectiveConfig, doc="ELBO weighting")
    eval_samples: int = knob(0, doc="samples to score (0 = evaluate.n_samples / toy_n)",
                             check=non_negative)
    temperatures: tuple[float, ...] = knob(
        factory=lambda: (1.0,), check=items(positive),
        doc="prior temperatures T (z = T eps) of the scored samples; the first is the headline")
    iwae_k: int = knob(500, doc="importance samples of the IWAE bound (Burda et al. 2016)",
                       check=positive)
    iwae_n: int = knob(1000, doc="test examples of the ELBO / IWAE bound (capped at the split)",
                       check=positive)
    iwae_batch: int = knob(2000, doc="(example, z) pairs decoded per call for the bounds",
                           check=positive)

    def __post_init__(self):
        if is_toy(self.dataset) != (self.model.kind == "mlp"):
            raise ValueError(f"model.kind {self.model.kind!r} does not fit dataset "
                             f"{self.dataset!r} (toy2d needs mlp, images need conv)")
