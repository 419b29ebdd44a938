"""The `diffusion` family's params section: one model per key (backbone, method, budget),
typed and validated; `method` is a tagged section whose `kind` picks EDM, DDPM or NCSN."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import (
    Check,
    LoopConfig,
    at_least,
    datasets,
    is_toy,
    items,
    knob,
    non_negative,
    one_of,
    positive,
    unit_interval,
)


@dataclass(frozen=True)
class DiffusionNetConfig:
    kind: str = knob("unet", doc="unet: images (genlab.models.unet); mlp: 2-D points",
                     check=one_of("unet", "mlp"))
    model_channels: int = knob(32, doc="U-Net base width", check=positive)
    channel_mult: tuple[int, ...] = knob(factory=lambda: (1, 2, 2), doc="width per level",
                                         check=items(positive))
    num_blocks: int = knob(1, doc="ResBlocks per U-Net level", check=positive)
    attn_resolutions: tuple[int, ...] = knob(factory=lambda: (7,),
                                             doc="sides with self-attention")
    num_heads: int = knob(1, doc="attention heads", check=positive)
    dropout: float = knob(0.1, doc="ResBlock dropout", check=unit_interval)
    embedding: str = knob("positional", doc="noise-label features",
                          check=one_of("positional", "fourier"))
    hidden: int = knob(256, doc="MLP width", check=positive)
    depth: int = knob(4, doc="MLP residual layers", check=positive)
    emb_dim: int = knob(64, doc="MLP noise-embedding width (even)",
                        check=Check(lambda e: e >= 2 and e % 2 == 0, "must be even and >= 2"))


@dataclass(frozen=True)
class EDMConfig:
    kind: str = knob("edm", doc="Karras et al. 2022", check=one_of("edm"))
    P_mean: float = knob(-1.2, doc="mean of ln(sigma) during training (Table 1)")
    P_std: float = knob(1.2, doc="std of ln(sigma) during training", check=positive)
    sigma_data: float = knob(0.5, doc="data std assumed by the preconditioning", check=positive)
    sampler: str = knob("heun", doc="heun (Algorithm 1) or stochastic (Algorithm 2)",
                        check=one_of("heun", "stochastic"))
    num_steps: int = knob(18, doc="sampler steps (NFE = 2 * num_steps - 1)", check=at_least(2))
    sigma_min: float = knob(0.002, doc="smallest sampling sigma", check=positive)
    sigma_max: float = knob(80.0, doc="largest sampling sigma", check=positive)
    rho: float = knob(7.0, doc="time-step exponent (Eq. 5)", check=positive)
    S_churn: float = knob(0.0, doc="stochastic sampler: noise injected per step",
                          check=non_negative)
    S_noise: float = knob(1.0, doc="stochastic sampler: noise inflation", check=positive)

    def __post_init__(self):
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"sigma_min ({self.sigma_min}) must be < sigma_max")


@dataclass(frozen=True)
class DDPMConfig:
    kind: str = knob("ddpm", doc="Ho et al. 2020", check=one_of("ddpm"))
    schedule: str = knob("linear", doc="beta schedule", check=one_of("linear", "cosine"))
    num_timesteps: int = knob(1000, doc="T", check=at_least(2))
    noise_label_scale: float = knob(0.001, doc="the backbone sees t * this as its noise label",
                                    check=positive)
    sampler: str = knob("ddim", doc="ancestral (Algorithm 2, T steps) or ddim",
                        check=one_of("ancestral", "ddim"))
    ddim_steps: int = knob(50, doc="DDIM steps", check=positive)
    ddim_eta: float = knob(0.0, doc="DDIM stochasticity (0 = deterministic)",
                           check=non_negative)
    clip_x0: float = knob(0.0, doc="clamp the predicted x_0 to [-c, c] while sampling "
                          "(images in [-1, 1]: 1.0; 0 = off)", check=non_negative)


@dataclass(frozen=True)
class NCSNConfig:
    kind: str = knob("ncsn", doc="Song & Ermon 2019", check=one_of("ncsn"))
    sigma_max: float = knob(10.0, doc="sigma_1, the largest noise level", check=positive)
    sigma_min: float = knob(0.01, doc="sigma_L, the smallest noise level", check=positive)
    num_scales: int = knob(50, doc="L, noise levels in the geometric ladder", check=at_least(2))
    n_steps_each: int = knob(20, doc="Langevin steps per noise level (T in Algorithm 1)",
                             check=positive)
    step_lr: float = knob(2e-5, doc="epsilon of Algorithm 1 (alpha_i = eps s_i^2 / s_L^2)",
                          check=positive)
    denoise_final: bool = knob(True, doc="one final Tweedie denoising step (NCSNv2)")
    parametrization: str = knob(
        "score", check=one_of("score", "denoiser"),
        doc="score: s = F(x; log sigma) / sigma (NCSNv2 Technique 3); denoiser: s = "
        "(D(x; sigma) - x) / sigma^2 with D EDM-preconditioned (Karras et al. 2022, Table 1), "
        "so the network need not reproduce the noise it is given. Same objective and sampler")
    sigma_data: float = knob(0.5, doc="data std for the denoiser parametrization's c_skip / "
                             "c_out / c_in", check=positive)
    weighting: str = knob(
        "paper", check=one_of("paper", "unit"),
        doc="lambda(sigma) of the loss. paper: sigma^2 (Song & Ermon 2019, Eq. 6); unit: "
        "sigma^2 (sigma^2 + sigma_data^2) / sigma_data^2, unit weight on the denoiser "
        "parametrization's network output at every level (the EDM loss's weighting)")

    def __post_init__(self):
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"sigma_min ({self.sigma_min}) must be < sigma_max")
        if self.weighting == "unit" and self.parametrization != "denoiser":
            raise ValueError("weighting 'unit' weights the denoiser parametrization's network "
                             f"output: it needs parametrization 'denoiser', got "
                             f"{self.parametrization!r}")


MethodConfig = EDMConfig | DDPMConfig | NCSNConfig  # picked by `kind`


@dataclass(frozen=True, kw_only=True)  # dataset is required: the stages depend on it
class DiffusionConfig(LoopConfig):
    dataset: str = knob(doc="an image set or toy2d/<name> (data/processed/<dataset>/)",
                        check=datasets())
    net: DiffusionNetConfig = knob(factory=DiffusionNetConfig, doc="backbone")
    method: MethodConfig = knob(
        factory=EDMConfig, doc="edm / ddpm / ncsn section, typed by its kind")
    conditional: bool = knob(False, doc="class-conditional (labelled image sets only)")
    label_dropout: float = knob(0.1, doc="conditional: labels dropped for CFG training",
                                check=unit_interval)
    guidance: tuple[float, ...] = knob(factory=lambda: (0.0,),
                                       doc="conditional: CFG weights w evaluated, the first "
                                       "is the headline (w = 0: the plain conditional model)",
                                       check=items(non_negative))
    eval_samples: int = knob(0, doc="samples to evaluate (0 = evaluate.n_samples / toy_n)",
                             check=non_negative)

    def __post_init__(self):
        toy = is_toy(self.dataset)
        if toy != (self.net.kind == "mlp"):
            raise ValueError(f"net.kind {self.net.kind!r} does not fit dataset "
                             f"{self.dataset!r} (toy2d needs mlp, images need unet)")
        if self.conditional and (toy or self.dataset == "celeba"):
            raise ValueError(f"conditional: {self.dataset} has no class labels")
