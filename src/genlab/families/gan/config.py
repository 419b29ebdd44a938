"""The `gan` family's params section: one model per key (networks, adversarial loss, the two
players' learning rates, evaluation temperatures), typed and validated."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import (
    Check,
    LoopConfig,
    datasets,
    is_toy,
    items,
    knob,
    non_negative,
    one_of,
    positive,
)

betas_pair = Check(lambda b: len(b) == 2 and all(0.0 <= v < 1.0 for v in b),
                   "must be two values in [0, 1)")


@dataclass(frozen=True)
class GANNetConfig:
    kind: str = knob("dcgan", doc="dcgan: images (Radford et al. 2016); mlp: 2-D points",
                     check=one_of("dcgan", "mlp"))
    z_dim: int = knob(64, doc="latent size", check=positive)
    g_width: int = knob(64, doc="generator width (DCGAN: channels at half resolution, twice "
                        "that at a quarter; MLP: hidden units)", check=positive)
    d_width: int = knob(64, doc="discriminator width (as g_width)", check=positive)
    depth: int = knob(3, doc="MLP: hidden layers of each player", check=positive)
    spectral_norm: bool = knob(True, doc="spectral norm on every discriminator layer (Miyato "
                               "et al. 2018); the DCGAN discriminator then has no BatchNorm")


@dataclass(frozen=True, kw_only=True)  # dataset is required: the stages depend on it
class GANConfig(LoopConfig):
    dataset: str = knob(doc="fashion_mnist or toy2d/<name> (data/processed/<dataset>/)",
                        check=datasets(images=("fashion_mnist",)))
    net: GANNetConfig = knob(factory=GANNetConfig, doc="generator and discriminator")
    loss: str = knob("nonsaturating", doc="nonsaturating (Goodfellow et al. 2014) or hinge "
                     "(Miyato et al. 2018)", check=one_of("nonsaturating", "hinge"))
    g_lr_scale: float = knob(1.0, doc="generator learning rate = lr * this (TTUR)",
                             check=positive)
    d_lr_scale: float = knob(1.0, doc="discriminator learning rate = lr * this (TTUR, "
                             "Heusel et al. 2017: D faster than G replaces n_critic)",
                             check=positive)
    betas: tuple[float, ...] = knob(factory=lambda: (0.5, 0.999), check=betas_pair,
                                    doc="Adam betas of both players (DCGAN: beta1 = 0.5; a "
                                    "smaller beta1 follows the opponent's moves faster)")
    r1_gamma: float = knob(0.0, doc="R1 penalty weight gamma on real data (Mescheder et al. "
                           "2018; 0 = off)", check=non_negative)
    r1_every: int = knob(1, doc="lazy R1: apply the penalty every N-th step, times N",
                         check=positive)
    grad_clip: float = knob(0.0, doc="clip the global grad norm (0 = off). Off by default: "
                            "the norm is taken over both players at once, so one player's "
                            "large gradient would shrink the other's step", check=non_negative)
    temperatures: tuple[float, ...] = knob(
        factory=lambda: (1.0,), check=items(positive),
        doc="latent temperatures evaluated, z ~ N(0, t^2 I) (t < 1 trades recall for "
        "precision); the first is the headline")
    eval_samples: int = knob(0, doc="samples to evaluate (0 = evaluate.n_samples / toy_n)",
                             check=non_negative)

    def __post_init__(self):
        if is_toy(self.dataset) != (self.net.kind == "mlp"):
            raise ValueError(f"net.kind {self.net.kind!r} does not fit dataset "
                             f"{self.dataset!r} (toy2d needs mlp, images need dcgan)")
