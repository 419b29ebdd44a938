"""Annealed Langevin dynamics for noise-conditional score networks (Song & Ermon 2019, Alg. 1).

The optional final denoising step x + sigma_L^2 s(x, sigma_L) is Tweedie's formula: it removes
the residual noise of level sigma_L (the `denoise` option of the NCSNv2 release, Song & Ermon
2020; its effect on FID is studied by Jolicoeur-Martineau et al. 2021). Runs under no_grad.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def annealed_langevin_dynamics(
    score,                                   # s(x (B, ...), sigma (B,), class_labels) -> (B, ...)
    x_init: torch.Tensor,                    # (B, ...) starting points, e.g. uniform noise
    sigmas: torch.Tensor,                    # (L,) sigma_1 > ... > sigma_L
    *,
    n_steps_each: int = 100,                 # T: Langevin steps per noise level
    eps: float = 2e-5,                       # epsilon: step size at the last level
    generator: torch.Generator,
    class_labels: torch.Tensor | None = None,
    denoise_final: bool = True,
    keep_trajectory: bool = False,
):
    """Returns x (B, ...), or (x, trajectory (L + 1, B, ...)) with the state before the first
    level and after each level when keep_trajectory (the annealing path, for plots)."""
    # Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).
    if n_steps_each < 1 or eps <= 0:
        raise ValueError(f"need n_steps_each >= 1 and eps > 0, got {n_steps_each}, {eps}")
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64).tolist()
    sigma_L = sigmas[-1]
    x = x_init
    trajectory = [x]
    for sigma_i in sigmas:
        alpha_i = eps * sigma_i**2 / sigma_L**2  # step size alpha_i
        sigma_vec = x.new_full((x.shape[0],), sigma_i)
        for _ in range(n_steps_each):
            z_t = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + alpha_i / 2 * score(x, sigma_vec, class_labels) + alpha_i**0.5 * z_t
        trajectory.append(x)
    if denoise_final:
        x = x + sigma_L**2 * score(x, x.new_full((x.shape[0],), sigma_L), class_labels)
        trajectory[-1] = x
    return (x, torch.stack(trajectory)) if keep_trajectory else x
