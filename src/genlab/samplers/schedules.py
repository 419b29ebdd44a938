"""Noise schedules: DDPM linear / cosine betas, the NCSN geometric sigma ladder, EDM time steps.

Ho et al. 2020 (linear betas, Sec. 4), Nichol & Dhariwal 2021 (cosine schedule, Eq. 17),
Song & Ermon 2019 (geometric sigmas, Sec. 4.2), Karras et al. 2022 (EDM steps, Eq. 5).
All schedules are float64 CPU tensors; callers cast them where they use them.
"""

from __future__ import annotations

import math

import torch


def linear_betas(num_timesteps: int = 1000, beta_start: float = 1e-4,
                 beta_end: float = 0.02) -> torch.Tensor:
    """beta_1..beta_T evenly spaced from beta_start to beta_end (Ho et al. 2020, Sec. 4); (T,)."""
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def cosine_betas(num_timesteps: int = 1000, s: float = 0.008,
                 max_beta: float = 0.999) -> torch.Tensor:
    """Betas of alpha_bar(t) = f(t) / f(0), f(t) = cos((t/T + s) / (1 + s) * pi/2)^2; (T,).

    Nichol & Dhariwal 2021, Eq. 17; beta_t = 1 - alpha_bar(t) / alpha_bar(t-1), clipped to
    max_beta (0.999 in the paper) so the last steps do not become singular near t = T.
    """
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    if not 0 < max_beta < 1:
        raise ValueError(f"max_beta must be in (0, 1), got {max_beta}")
    t = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2  # Eq. 17
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s) (Ho et al. 2020, Sec. 2); (T,) -> (T,)."""
    return torch.cumprod(1 - betas.double(), dim=0)


DDPM_SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas}


def ddpm_betas(schedule: str = "linear", num_timesteps: int = 1000) -> torch.Tensor:
    """The named beta schedule ('linear' or 'cosine') with its paper defaults; (T,)."""
    if schedule not in DDPM_SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(DDPM_SCHEDULES)}, got {schedule!r}")
    return DDPM_SCHEDULES[schedule](num_timesteps)


def ncsn_sigmas(sigma_max: float = 50.0, sigma_min: float = 0.01,
                num_scales: int = 232) -> torch.Tensor:
    """sigma_1 > ... > sigma_L, a geometric sequence (Song & Ermon 2019, Sec. 4.2); (L,).

    Defaults are NCSNv2's CIFAR-10 ladder (Song & Ermon 2020); NCSN used 1 -> 0.01, L = 10.
    """
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if num_scales < 2:
        raise ValueError(f"num_scales must be >= 2, got {num_scales}")
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), num_scales,
                                dtype=torch.float64)
    return log_sigmas.exp()


def edm_sigma_steps(num_steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0,
                    rho: float = 7.0) -> torch.Tensor:
    """t_0 = sigma_max > ... > t_{N-1} = sigma_min, then t_N = 0 (Karras et al. 2022, Eq. 5).

    t_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho; (N+1,).
    """
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    i = torch.arange(num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    t_steps = (hi + i / (num_steps - 1) * (lo - hi)) ** rho  # Eq. 5
    return torch.cat([t_steps, t_steps.new_zeros(1)])  # t_N = 0
