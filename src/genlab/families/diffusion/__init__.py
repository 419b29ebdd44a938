"""Family `diffusion` (role generative): NCSN (Song & Ermon 2019), DDPM (Ho et al. 2020) and
EDM (Karras et al. 2022) on one code path, with a U-Net for images and an MLP for 2-D points.

This module only wires the pieces (STYLE rules 1, 2, 7): each method's thin wrapper around the
backbone, its objective, its paper sampler and its network-evaluation count, chosen through
explicit tables keyed by `method.kind` and `method.sampler`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from genlab.families import Built, Family, register
from genlab.families.diffusion.config import DDPMConfig, DiffusionConfig, EDMConfig, NCSNConfig
from genlab.models.precond import (
    ClassifierFreeGuidance,
    DDPMEpsModel,
    EDMPrecond,
    NCSNScore,
    ScoreFromDenoiser,
)
from genlab.models.score_mlp import ScoreMLP
from genlab.models.unet import UNet, UNetConfig
from genlab.objectives.diffusion import DDPMLoss, EDMLoss, NCSNLoss
from genlab.samplers.ddpm import ddim_sampler, ddpm_ancestral_sampler
from genlab.samplers.edm import edm_heun_sampler, edm_stochastic_sampler
from genlab.samplers.ncsn import annealed_langevin_dynamics
from genlab.samplers.schedules import alphas_cumprod, ddpm_betas, ncsn_sigmas
from genlab.training.device import autocast

N_CLASSES = 10  # Fashion-MNIST / CIFAR-10 labels


# ---------------------------------------------------------------------------------------------
# Backbones: net(x, noise_labels, class_labels=None) -> like x.


def backbone_kwargs(net_cfg, shape: tuple[int, ...], conditional: bool) -> dict:
    """Constructor kwargs of the backbone for one example's shape ((C, H, W) or (D,))."""
    label_dim = N_CLASSES if conditional else 0
    if net_cfg.kind == "mlp":
        return {"dim": shape[0], "hidden": net_cfg.hidden, "depth": net_cfg.depth,
                "emb_dim": net_cfg.emb_dim, "label_dim": label_dim}
    c, h, _ = shape
    return {"in_channels": c, "out_channels": c, "resolution": h,
            "model_channels": net_cfg.model_channels, "channel_mult": tuple(net_cfg.channel_mult),
            "num_blocks": net_cfg.num_blocks, "attn_resolutions": tuple(net_cfg.attn_resolutions),
            "num_heads": net_cfg.num_heads, "dropout": net_cfg.dropout, "label_dim": label_dim,
            "embedding": net_cfg.embedding}


# net.kind -> (kwargs, nhwc) -> backbone; nhwc turns on the U-Net's NHWC code paths
BACKBONES: dict[str, Callable[[dict, bool], nn.Module]] = {
    "mlp": lambda kwargs, nhwc: ScoreMLP(**kwargs),
    "unet": lambda kwargs, nhwc: UNet.from_config(UNetConfig(**kwargs), nhwc_paths=nhwc),
}


# ---------------------------------------------------------------------------------------------
# Methods.


def ddpm_alphas(method: DDPMConfig) -> torch.Tensor:
    return alphas_cumprod(ddpm_betas(method.schedule, method.num_timesteps))


def ncsn_ladder(method: NCSNConfig) -> torch.Tensor:
    return ncsn_sigmas(method.sigma_max, method.sigma_min, method.num_scales)


def _edm_sample(model, method: EDMConfig, shape, labels, generator, device, **kw):
    latents = torch.randn(shape, generator=generator, device=device)
    common = {"class_labels": labels, "num_steps": method.num_steps,
              "sigma_min": method.sigma_min, "sigma_max": method.sigma_max, "rho": method.rho,
              **kw}
    if method.sampler == "heun":
        return edm_heun_sampler(model, latents, **common)
    return edm_stochastic_sampler(model, latents, generator=generator, S_churn=method.S_churn,
                                  S_noise=method.S_noise, **common)


def _ddpm_sample(model, method: DDPMConfig, shape, labels, generator, device, **kw):
    common = {"generator": generator, "class_labels": labels, "device": device,
              "clip_x0": method.clip_x0 or None, **kw}
    if method.sampler == "ddim":
        return ddim_sampler(model, shape, ddpm_alphas(method), n_steps=method.ddim_steps,
                            eta=method.ddim_eta, **common)
    return ddpm_ancestral_sampler(model, shape, ddpm_alphas(method), **common)


def _ncsn_sample(model, method: NCSNConfig, shape, labels, generator, device, **kw):
    sigmas = ncsn_ladder(method)
    x_init = float(sigmas[0]) * torch.randn(shape, generator=generator, device=device)
    return annealed_langevin_dynamics(model, x_init, sigmas.to(device),
                                      n_steps_each=method.n_steps_each, eps=method.step_lr,
                                      generator=generator, class_labels=labels,
                                      denoise_final=method.denoise_final, **kw)


def _ncsn_wrap(method: NCSNConfig, backbone: nn.Module) -> nn.Module:
    if method.parametrization == "denoiser":
        return ScoreFromDenoiser(EDMPrecond(backbone, sigma_data=method.sigma_data))
    return NCSNScore(backbone)


@dataclass(frozen=True)
class Method:
    wrap: Callable  # (method cfg, backbone) -> the model the objective and sampler call
    objective: Callable  # (method cfg, label_dropout) -> (net, x, cond, generator) -> (B,)
    # (model, method cfg, shape, labels, generator, device, keep_trajectory=False) -> samples,
    # or (samples, trajectory (steps + 1, B, ...)) with keep_trajectory=True
    sample: Callable
    nfe: Callable[..., int]  # (method cfg) -> network evaluations per sample, unguided


METHODS: dict[str, Method] = {
    "edm": Method(
        wrap=lambda m, b: EDMPrecond(b, sigma_data=m.sigma_data),
        objective=lambda m, p: EDMLoss(P_mean=m.P_mean, P_std=m.P_std,
                                       sigma_data=m.sigma_data, label_dropout=p),
        sample=_edm_sample,
        nfe=lambda m: 2 * m.num_steps - 1),
    "ddpm": Method(
        wrap=lambda m, b: DDPMEpsModel(b, noise_label_scale=m.noise_label_scale),
        objective=lambda m, p: DDPMLoss(ddpm_alphas(m), label_dropout=p),
        sample=_ddpm_sample,
        nfe=lambda m: m.ddim_steps if m.sampler == "ddim" else m.num_timesteps),
    "ncsn": Method(
        wrap=_ncsn_wrap,
        objective=lambda m, p: NCSNLoss(ncsn_ladder(m), weighting=m.weighting,
                                        sigma_data=m.sigma_data),
        sample=_ncsn_sample,
        nfe=lambda m: m.num_scales * m.n_steps_each + int(m.denoise_final)),
}


def nfe(method) -> int:
    """Network evaluations per sample (guidance doubles the batch instead)."""
    return METHODS[method.kind].nfe(method)


# ---------------------------------------------------------------------------------------------
# The family's entry: build, rebuild, sample.


def rebuild(arch: dict, cfg: DiffusionConfig, nhwc: bool = False) -> nn.Module:
    """The method's wrapper around the backbone of `arch` ({"kind", "kwargs"})."""
    backbone = BACKBONES[arch["kind"]](arch["kwargs"], nhwc)
    return METHODS[cfg.method.kind].wrap(cfg.method, backbone)


def build(cfg: DiffusionConfig, shape: tuple[int, ...], nhwc: bool = False) -> Built:
    arch = {"kind": cfg.net.kind, "kwargs": backbone_kwargs(cfg.net, shape, cfg.conditional)}
    label_dropout = cfg.label_dropout if cfg.conditional else 0.0
    objective = METHODS[cfg.method.kind].objective(cfg.method, label_dropout)
    return Built(net=rebuild(arch, cfg, nhwc), objective=objective, arch=arch)


def backbone(model: nn.Module) -> nn.Module | None:
    """The U-Net inside a wrapped model (what runtime.compile compiles for sampling)."""
    return next((m for m in model.modules() if isinstance(m, UNet)), None)


@torch.no_grad()
def generate(model, method, n: int, example_shape: tuple[int, ...], *, generator: torch.Generator,
             labels: torch.Tensor | None = None, guidance: float | None = None,
             batch_size: int = 500, device: torch.device | str = "cpu",
             bf16: bool = False) -> torch.Tensor:
    """n samples (n, *example_shape) on the CPU with the method's sampler, in batches.

    labels (n,) for conditional models; guidance w wraps the model in classifier-free guidance
    (D_cond + w (D_cond - D_uncond)). bf16=True runs the network under bf16 autocast on CUDA
    (the sampler's state stays float32)."""
    model = model.eval()
    if guidance is not None and labels is not None:
        model = ClassifierFreeGuidance(model, guidance)
    device = torch.device(device)
    sample = METHODS[method.kind].sample
    out = []
    with autocast(device, bf16):
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            y = None if labels is None else labels[i:i + m].to(device)
            out.append(sample(model, method, (m, *example_shape), y, generator, device)
                       .float().cpu())
    return torch.cat(out)


@torch.no_grad()
def sample_with_path(model, method, n: int, example_shape: tuple[int, ...], *,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n unguided samples in one batch and the sampler's trajectory to them, (steps + 1, n,
    *example_shape), whose last entry is the samples (for small data such as 2-D points)."""
    device = next(model.parameters()).device
    x, trajectory = METHODS[method.kind].sample(model.eval(), method, (n, *example_shape), None,
                                                generator, device, keep_trajectory=True)
    return x.float().cpu(), trajectory.float().cpu()


FAMILY = register(Family(name="diffusion", role="generative", config=DiffusionConfig,
                         build=build, rebuild=rebuild, backbone=backbone))
