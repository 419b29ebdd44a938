"""Sampling entry point: run the paper sampler a method's config names, with optional
classifier-free guidance, in batches. Each sampler itself lives in its own module."""

from __future__ import annotations

import torch

from genlab.models.diffusion import ddpm_alphas, ncsn_ladder
from genlab.models.precond import ClassifierFreeGuidance
from genlab.samplers.ddpm import ddim_sampler, ddpm_ancestral_sampler
from genlab.samplers.edm import edm_heun_sampler, edm_stochastic_sampler
from genlab.samplers.ncsn import annealed_langevin_dynamics
from genlab.training.device import autocast


def nfe(method) -> int:
    """Network evaluations per sample (without guidance, which doubles the batch instead)."""
    if method.kind == "edm":
        return 2 * method.num_steps - 1
    if method.kind == "ddpm":
        return method.ddim_steps if method.sampler == "ddim" else method.num_timesteps
    return method.num_scales * method.n_steps_each + int(method.denoise_final)


def _sample_batch(model, method, shape, labels, generator, device):
    if method.kind == "edm":
        latents = torch.randn(shape, generator=generator, device=device)
        common = {"class_labels": labels, "num_steps": method.num_steps,
                  "sigma_min": method.sigma_min, "sigma_max": method.sigma_max, "rho": method.rho}
        if method.sampler == "heun":
            return edm_heun_sampler(model, latents, **common)
        return edm_stochastic_sampler(model, latents, generator=generator, S_churn=method.S_churn,
                                      S_noise=method.S_noise, **common)
    if method.kind == "ddpm":
        alphas = ddpm_alphas(method)
        clip = method.clip_x0 or None
        if method.sampler == "ddim":
            return ddim_sampler(model, shape, alphas, n_steps=method.ddim_steps,
                                eta=method.ddim_eta, generator=generator, class_labels=labels,
                                device=device, clip_x0=clip)
        return ddpm_ancestral_sampler(model, shape, alphas, generator=generator,
                                      class_labels=labels, device=device, clip_x0=clip)
    sigmas = ncsn_ladder(method)
    x_init = float(sigmas[0]) * torch.randn(shape, generator=generator, device=device)
    return annealed_langevin_dynamics(model, x_init, sigmas.to(device),
                                      n_steps_each=method.n_steps_each, eps=method.step_lr,
                                      generator=generator, class_labels=labels,
                                      denoise_final=method.denoise_final)


@torch.no_grad()
def generate(model, method, n: int, example_shape: tuple[int, ...], *, generator: torch.Generator,
             labels: torch.Tensor | None = None, guidance: float | None = None,
             batch_size: int = 500, device: torch.device | str = "cpu",
             bf16: bool = False) -> torch.Tensor:
    """n samples (n, *example_shape) on the CPU; labels (n,) for conditional models; guidance w
    wraps the model in classifier-free guidance (D_cond + w (D_cond - D_uncond)). bf16=True
    runs the network under bf16 autocast on CUDA (the sampler's state stays float32)."""
    model = model.eval()
    if guidance is not None and labels is not None:
        model = ClassifierFreeGuidance(model, guidance)
    device = torch.device(device)
    out = []
    with autocast(device, bf16):
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            y = None if labels is None else labels[i:i + m].to(device)
            out.append(_sample_batch(model, method, (m, *example_shape), y, generator, device)
                       .float().cpu())
    return torch.cat(out)
