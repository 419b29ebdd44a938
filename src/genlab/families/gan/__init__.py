"""Family `gan` (role generative): DCGAN (Radford et al. 2016) on images and MLP GANs on 2-D
points, with a stable recipe: non-saturating or hinge loss, spectral norm in the discriminator
(Miyato et al. 2018), R1 (Mescheder et al. 2018), two time-scale updates (Heusel et al. 2017)
and the loop's EMA of the generator. Unconditional.

This module only wires: the network pair (models.gan.GAN), the adversarial objective
(objectives.gan) and the two optimiser groups. One simultaneous update per step in the one
generic loop: the objective's single loss gives D its gradient of L_D and G its gradient of
L_G, and the groups step each player at its own learning rate.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.families import Built, Family, register
from genlab.families.gan.config import GANConfig
from genlab.models.gan import GAN
from genlab.objectives.gan import AdversarialLoss


def gan_arch(cfg: GANConfig, shape: tuple[int, ...]) -> dict:
    """GAN constructor kwargs for one example's shape ((C, H, W) or (D,))."""
    net = cfg.net
    if net.kind == "mlp":
        g = {"dim": shape[0], "hidden": net.g_width, "depth": net.depth}
        d = {"dim": shape[0], "hidden": net.d_width, "depth": net.depth,
             "spectral": net.spectral_norm}
    else:
        c, h, w = shape
        assert h == w, f"DCGAN needs square images, got {shape}"
        g = {"channels": c, "size": h, "width": net.g_width}
        d = {"channels": c, "size": h, "width": net.d_width, "spectral": net.spectral_norm}
    return {"kind": net.kind, "z_dim": net.z_dim, "generator": g, "discriminator": d}


def rebuild(arch: dict, cfg: GANConfig | None = None, nhwc: bool = False) -> nn.Module:
    """The untrained GAN of `arch` (nhwc: no NHWC-specific code paths here)."""
    return GAN(**arch)


def param_groups(net: GAN, cfg: GANConfig) -> list[dict]:
    """The two players' AdamW groups: own learning-rate scale (TTUR), shared betas."""
    return [{"params": list(net.generator.parameters()), "lr_scale": cfg.g_lr_scale,
             "betas": tuple(cfg.betas)},
            {"params": list(net.discriminator.parameters()), "lr_scale": cfg.d_lr_scale,
             "betas": tuple(cfg.betas)}]


def build(cfg: GANConfig, shape: tuple[int, ...], nhwc: bool = False) -> Built:
    arch = gan_arch(cfg, shape)
    net = rebuild(arch, cfg, nhwc)
    objective = AdversarialLoss(cfg.loss, r1_gamma=cfg.r1_gamma, r1_every=cfg.r1_every)
    return Built(net=net, objective=objective, arch=arch, param_groups=param_groups(net, cfg))


@torch.no_grad()
def generate(net: GAN, n: int, *, generator: torch.Generator, temperature: float = 1.0,
             batch_size: int = 500, device: torch.device | str = "cpu") -> torch.Tensor:
    """n samples (n, ...) on the CPU from the generator in eval mode, z ~ N(0, t^2 I)."""
    net = net.eval()
    out = []
    for i in range(0, n, batch_size):
        z = net.latents(min(batch_size, n - i), generator, device, temperature)
        out.append(net(z).float().cpu())
    return torch.cat(out)


FAMILY = register(Family(name="gan", role="generative", config=GANConfig, build=build,
                         rebuild=rebuild))
