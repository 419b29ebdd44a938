"""Family `vae` (role generative): the variational autoencoder (Kingma & Welling 2014) with a
conv encoder / transposed-conv decoder for images and MLPs for 2-D points, trained on the
negative ELBO with beta, KL warm-up and free bits; wired from its params section."""

from __future__ import annotations

from torch import nn

from genlab.families import Built, Family, register
from genlab.families.vae.config import VAEConfig
from genlab.models.vae import VAE_MODELS, vae_kwargs
from genlab.objectives.vae import ELBOLoss


def rebuild(arch: dict, cfg: VAEConfig | None = None, nhwc: bool = False) -> nn.Module:
    """The network of `arch` ({"kind": conv | mlp, "kwargs": constructor kwargs})."""
    return VAE_MODELS[arch["kind"]](**arch["kwargs"])


def build(cfg: VAEConfig, shape: tuple[int, ...], nhwc: bool = False) -> Built:
    """Network for one example's shape ((C, H, W) or (D,)) and its ELBO objective."""
    arch = {"kind": cfg.model.kind, "kwargs": vae_kwargs(cfg.model, shape)}
    o = cfg.objective
    objective = ELBOLoss(beta=o.beta, warmup_steps=o.warmup_steps, free_bits=o.free_bits)
    return Built(net=rebuild(arch), objective=objective, arch=arch)


FAMILY = register(Family(name="vae", role="generative", config=VAEConfig, build=build,
                         rebuild=rebuild))
