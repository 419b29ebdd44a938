"""Family `vq` (role pretrain): image tokenizers, the VQ-VAE (van den Oord et al. 2017) with EMA
codebook updates and dead-code restarts, FSQ (Mentzer et al. 2023) and VQ-GAN (Esser et al.
2021), wired from their params section. Their token grids and latents (written by the
evaluate stage, genlab.data.tokens) and weights (genlab.models.vqvae.load_tokenizer) are what
later models build on.

This module only wires: the Tokenizer (models.vqvae), its objective (objectives.vq) and the
optimiser groups (VQ-GAN: the tokenizer and the discriminator at their own learning rates).
"""

from __future__ import annotations

from torch import nn

from genlab.config import ConfigError
from genlab.families import Built, Family, register
from genlab.families.vq.config import VQConfig
from genlab.models.vqvae import Tokenizer, tokenizer_kwargs
from genlab.objectives.vq import VQGANLoss, VQLoss


def rebuild(arch: dict, cfg: VQConfig | None = None, nhwc: bool = False) -> nn.Module:
    """The untrained Tokenizer of `arch` (its constructor kwargs)."""
    return Tokenizer(**arch)


def objective(cfg: VQConfig):
    if cfg.gan.weight > 0:
        return VQGANLoss(weight=cfg.gan.weight, start=cfg.gan.start, delta=cfg.gan.delta,
                         recon=cfg.recon)
    return VQLoss(recon=cfg.recon)


def param_groups(net: Tokenizer, cfg: VQConfig) -> list[dict]:
    """One AdamW group for the tokenizer; VQ-GAN adds the discriminator's at d_lr_scale."""
    disc = net.discriminator
    own = [p for name, p in net.named_parameters() if not name.startswith("discriminator.")]
    groups = [{"params": own, "betas": tuple(cfg.betas)}]
    if disc is not None:
        groups.append({"params": list(disc.parameters()), "lr_scale": cfg.gan.d_lr_scale,
                       "betas": tuple(cfg.betas)})
    return groups


def build(cfg: VQConfig, shape: tuple[int, ...], nhwc: bool = False) -> Built:
    """Tokenizer for one example's shape (C, H, W) and its objective."""
    if len(shape) != 3 or shape[1] % cfg.model.downsample:
        raise ConfigError(f"vq: model.downsample {cfg.model.downsample} must divide the image "
                          f"side (example shape {shape})")
    arch = tokenizer_kwargs(cfg, shape)
    net = rebuild(arch)
    return Built(net=net, objective=objective(cfg), arch=arch, param_groups=param_groups(net, cfg))


FAMILY = register(Family(name="vq", role="pretrain", config=VQConfig, build=build,
                         rebuild=rebuild))
