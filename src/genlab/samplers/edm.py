"""EDM samplers: Heun's 2nd-order ODE solver and the stochastic sampler (Karras et al. 2022).

Deterministic sampler: Algorithm 1; stochastic sampler with churn: Algorithm 2; time steps from
Eq. 5 (genlab.samplers.schedules.edm_sigma_steps). The denoiser is called as
D(x (B, ...), sigma (B,), class_labels) -> (B, ...). Both use NFE = 2 num_steps - 1 denoiser
calls: one Euler step plus one Heun correction per step, no correction on the last (t_N = 0).
Both run under torch.no_grad().
"""

from __future__ import annotations

import math

import torch

from genlab.samplers.schedules import edm_sigma_steps


def _denoise(denoiser, x: torch.Tensor, t: float, class_labels) -> torch.Tensor:
    return denoiser(x, x.new_full((x.shape[0],), t), class_labels)


@torch.no_grad()
def edm_heun_sampler(
    denoiser,                                # D(x, sigma (B,), labels) -> (B, ...)
    latents: torch.Tensor,                   # (B, ...) ~ N(0, I); scaled by sigma_max here
    *,
    class_labels: torch.Tensor | None = None,
    num_steps: int = 18,                     # N; NFE = 2 N - 1
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    keep_trajectory: bool = False,
):
    """Returns x_N (B, ...), or (x_N, trajectory (N + 1, B, ...)) x_0 .. x_N."""
    # EDM deterministic sampler (Karras et al. 2022, Algorithm 1).
    t_steps = edm_sigma_steps(num_steps, sigma_min, sigma_max, rho).tolist()
    x_next = latents * t_steps[0]  # x_0 ~ N(0, t_0^2 I)
    trajectory = [x_next]
    for t_cur, t_next in zip(t_steps[:-1], t_steps[1:], strict=True):
        x_cur = x_next
        d_cur = (x_cur - _denoise(denoiser, x_cur, t_cur, class_labels)) / t_cur
        x_next = x_cur + (t_next - t_cur) * d_cur  # Euler step
        if t_next > 0:  # 2nd-order correction
            d_prime = (x_next - _denoise(denoiser, x_next, t_next, class_labels)) / t_next
            x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
        trajectory.append(x_next)
    return (x_next, torch.stack(trajectory)) if keep_trajectory else x_next


@torch.no_grad()
def edm_stochastic_sampler(
    denoiser,                                # D(x, sigma (B,), labels) -> (B, ...)
    latents: torch.Tensor,                   # (B, ...) ~ N(0, I); scaled by sigma_max here
    *,
    generator: torch.Generator,
    class_labels: torch.Tensor | None = None,
    num_steps: int = 18,                     # N; NFE = 2 N - 1
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    S_churn: float = 0.0,                    # total churn; 0 recovers Algorithm 1
    S_min: float = 0.0,                      # churn only for t_i in [S_min, S_max]
    S_max: float = math.inf,
    S_noise: float = 1.0,                    # std of the added noise (slightly > 1 in the paper)
    keep_trajectory: bool = False,
):
    """Returns x_N (B, ...), or (x_N, trajectory (N + 1, B, ...)) x_0 .. x_N."""
    # EDM stochastic sampler (Karras et al. 2022, Algorithm 2).
    if S_churn < 0 or S_noise < 0:
        raise ValueError(f"S_churn and S_noise must be >= 0, got {S_churn}, {S_noise}")
    t_steps = edm_sigma_steps(num_steps, sigma_min, sigma_max, rho).tolist()
    x_next = latents * t_steps[0]
    trajectory = [x_next]
    for t_cur, t_next in zip(t_steps[:-1], t_steps[1:], strict=True):
        x_cur = x_next
        gamma = min(S_churn / num_steps, math.sqrt(2) - 1) if S_min <= t_cur <= S_max else 0.0
        t_hat = t_cur + gamma * t_cur  # raise the noise level temporarily
        eps = S_noise * torch.randn(x_cur.shape, generator=generator, device=x_cur.device,
                                    dtype=x_cur.dtype)
        x_hat = x_cur + math.sqrt(t_hat**2 - t_cur**2) * eps
        d_cur = (x_hat - _denoise(denoiser, x_hat, t_hat, class_labels)) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur  # Euler step from t_hat
        if t_next > 0:  # 2nd-order correction
            d_prime = (x_next - _denoise(denoiser, x_next, t_next, class_labels)) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
        trajectory.append(x_next)
    return (x_next, torch.stack(trajectory)) if keep_trajectory else x_next
